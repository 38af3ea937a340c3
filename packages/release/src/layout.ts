/*
 * What a release contains and where: the programs (one bundle per entry point, at the same path below
 * packages/ as in the build tree, so every path a program computes from its own location, such as the
 * daemon's worker.js or the hooks' ns-metadata-proxy CLI, resolves unchanged), the runtime beside the
 * wrappers in bin/, and where the Debian package puts the rest.
 */
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROGRAM_PACKAGES, type ProgramName } from '@nmp/metadata-hooks';
import { HELPER_PATH, RELAY_PATH, WORKER_PATH } from '@nmp/metadata-proxy-daemon';

/** The repository root (this file is packages/release/dist/src/layout.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Where the .deb installs the release tree; the tarball's top directory holds the same tree. */
export const DEB_PREFIX = '/usr/lib/nmp';

export interface ProgramSpec {
  readonly name: ProgramName;
  /** Folder under packages/. */
  readonly pkg: string;
  /** One line for the man page's NAME and the wrappers' comment. */
  readonly summary: string;
  /** Man page section: 8 for what only root runs or a service manager starts, 1 otherwise. */
  readonly section: 1 | 8;
}

export const PROGRAMS: readonly ProgramSpec[] = Object.freeze([
  {
    name: 'metadata-agent',
    pkg: PROGRAM_PACKAGES['metadata-agent'],
    summary:
      'nmp metadata agent: look up the instance behind a metadata request and forward it, signed, to Nova',
    section: 8,
  },
  {
    name: 'ns-metadata-proxy',
    pkg: PROGRAM_PACKAGES['ns-metadata-proxy'],
    summary: 'nmp per-namespace metadata proxy: stamp the network or router id and forward to the agent',
    section: 8,
  },
  {
    name: 'metadata-hooks',
    pkg: PROGRAM_PACKAGES['metadata-hooks'],
    summary:
      'nmp hooks for the DHCP and L3 agents: addresses, iptables rules, proxies, units, haproxy drop-in',
    section: 8,
  },
  {
    name: 'metadata-proxy-daemon',
    pkg: PROGRAM_PACKAGES['metadata-proxy-daemon'],
    summary: 'nmp metadata proxy daemon: one process serving instance metadata in every network namespace',
    section: 8,
  },
  {
    name: 'ovn-metadata-provisioner',
    pkg: PROGRAM_PACKAGES['ovn-metadata-provisioner'],
    summary: 'nmp OVN metadata provisioner: the ovnmeta- namespaces of an ML2/OVN chassis',
    section: 8,
  },
]);

/**
 * Every file that node runs, relative to the repository: each program's CLI, and the scripts the daemon
 * starts as processes of their own (its serving worker and the listener helpers), taken from the paths
 * the daemon itself uses so that a rename cannot leave a release without them.
 */
export function entryPoints(): string[] {
  const out = PROGRAMS.map((p) => `packages/${p.pkg}/dist/src/cli.js`);
  for (const path of [WORKER_PATH, HELPER_PATH, RELAY_PATH]) out.push(relative(REPO_ROOT, path));
  return out;
}

/** The package folders that ship (a package.json each, for the version and `"type": "module"`). */
export function shippedPackages(): string[] {
  return [...new Set(entryPoints().map((e) => e.split('/')[1]!))].sort();
}
