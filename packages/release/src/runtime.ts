/*
 * The Node.js runtime a release carries: the very node that runs the build (process.execPath), so what
 * the tests and benchmarks ran is what is installed, copied to bin/node with its debugging information
 * stripped as Debian strips binaries (`strip --strip-unneeded`; 99 MB -> 86 MB for node 20.20.2), and its
 * licence. Why not a single executable application: node 20's SEA is one CommonJS script per binary, so
 * five programs and three helper scripts would be eight 86 MB binaries or one multi-call binary that can
 * no longer be started as `node <script>` by the daemon and the hooks; one runtime beside plain bundles
 * keeps every program, `node --cpu-prof` and the service flags as they are.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ProgramErrorCode } from '@nmp/common';

/** The oldest node the project supports (package.json engines: undici 7 needs 20.18.1). */
export const MIN_NODE = [20, 18, 1] as const;

export class RuntimeError extends Error {
  readonly code = 'NMP_RELEASE_RUNTIME' satisfies ProgramErrorCode;
}

export interface RuntimeInfo {
  readonly version: string;
  readonly licenseFile: string;
}

export function checkNodeVersion(version: string): void {
  const parts = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version)?.slice(1).map(Number);
  if (!parts) throw new RuntimeError(`cannot read the node version '${version}'`);
  for (let i = 0; i < 3; i++) {
    if (parts[i]! > MIN_NODE[i]!) return;
    if (parts[i]! < MIN_NODE[i]!)
      throw new RuntimeError(
        `node ${version} runs this build; a release needs node ${MIN_NODE.join('.')} or later`,
      );
  }
}

/**
 * Node's LICENSE (the runtime and everything linked into it): where node's own tarball (beside bin/),
 * Debian's and NodeSource's packages (/usr/share/doc/nodejs) put it, or `explicit`.
 */
export function findNodeLicense(execPath: string, explicit?: string): string {
  const prefix = resolve(dirname(execPath), '..');
  const candidates = explicit
    ? [explicit]
    : [
        join(prefix, 'LICENSE'),
        join(prefix, 'share', 'doc', 'node', 'LICENSE'),
        join(prefix, 'share', 'doc', 'nodejs', 'LICENSE'),
        '/usr/share/doc/nodejs/LICENSE',
      ];
  for (const c of candidates)
    if (existsSync(c) && /Node\.js/.test(readFileSync(c, 'utf8').slice(0, 4096))) return c;
  throw new RuntimeError(
    `no licence file of node found (looked at ${candidates.join(', ')}); give it with --node-license`,
  );
}

/** Copy and strip the running node to `dest` (mode 0755). */
export function installRuntime(dest: string, licenseExplicit?: string): RuntimeInfo {
  checkNodeVersion(process.version);
  const licenseFile = findNodeLicense(process.execPath, licenseExplicit);
  copyFileSync(process.execPath, dest);
  try {
    execFileSync('strip', ['--remove-section=.comment', '--remove-section=.note', '--strip-unneeded', dest], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (err) {
    throw new RuntimeError(`strip ${dest}: ${(err as Error).message} (binutils, which dpkg-dev depends on)`);
  }
  chmodSync(dest, 0o755);
  return { version: process.version, licenseFile };
}
