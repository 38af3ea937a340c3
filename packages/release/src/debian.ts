/*
 * The Debian package: control file (dependencies from dpkg-shlibdeps on the runtime, plus the programs
 * nmp runs), conffiles, md5sums, the maintainer scripts (packages/release/debian/, with the unit and
 * directory lists filled in from the code), the machine-readable copyright file, and `dpkg-deb --build`
 * with fixed owners and times so that the same input gives the same bytes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProgramErrorCode } from '@nmp/common';
import type { BundledModule } from './bundle.js';
import { listFiles } from './tree.js';

export class DebianError extends Error {
  readonly code = 'NMP_RELEASE_DEBIAN' satisfies ProgramErrorCode;
}

/** A version dpkg accepts for a native package: digits first, then letters, digits, `.`, `+`, `~`. */
export function checkDebianVersion(version: string): void {
  if (!/^[0-9][A-Za-z0-9.+~]*$/.test(version))
    throw new DebianError(
      `version '${version}': a Debian native version starts with a digit and has only letters, digits and . + ~`,
    );
}

export interface ControlInput {
  readonly version: string;
  readonly installedSizeKiB: number;
  /** From dpkg-shlibdeps on the runtime. */
  readonly sharedLibraryDepends: string;
  readonly maintainer: string;
  readonly nodeVersion: string;
}

/** What nmp runs besides its own runtime: `ip` (iproute2), iptables-restore/ip6tables-restore, adduser. */
export const DEPENDS = ['adduser', 'iproute2', 'iptables'] as const;
/** netns_exec = python in the daemon (one python3 helper per batch of namespaces): every neutron node has it. */
export const RECOMMENDS = ['python3'] as const;
/** ethtool: OVN userspace datapath; haproxy: what the drop-in falls back to; openvswitch-switch: OVN chassis. */
export const SUGGESTS = ['ethtool', 'haproxy', 'openvswitch-switch'] as const;

export function controlFile(c: ControlInput): string {
  return [
    'Package: nmp',
    `Version: ${c.version}`,
    'Architecture: amd64',
    `Maintainer: ${c.maintainer}`,
    `Installed-Size: ${c.installedSizeKiB}`,
    `Depends: ${[c.sharedLibraryDepends, ...DEPENDS].filter((d) => d !== '').join(', ')}`,
    `Recommends: ${RECOMMENDS.join(', ')}`,
    `Suggests: ${SUGGESTS.join(', ')}`,
    'Section: net',
    'Priority: optional',
    'Description: fast, secure instance-metadata chain for OpenStack Neutron',
    ' nmp replaces the instance-metadata proxy chain of OpenStack Neutron (haproxy',
    ' as ns-metadata-proxy, and neutron-metadata-agent) with programs that speak',
    ' the same wire protocol, so that Nova and the guests notice no change. It',
    ' removes every spoofed identity header, keeps its connections pooled, caches',
    ' port lookups safely, limits IPv4 and IPv6 clients alike, reports stable',
    ' error codes and Prometheus metrics, and can serve every namespace of a node',
    ' from one process.',
    ' .',
    ' Programs: metadata-agent (RabbitMQ RPC to neutron-server, OVN Southbound or',
    ' Neutron REST), ns-metadata-proxy, metadata-hooks, metadata-proxy-daemon and',
    ' ovn-metadata-provisioner, with their systemd units and man pages.',
    ' .',
    ` The package carries its own Node.js runtime (${c.nodeVersion}) under /usr/lib/nmp`,
    ' and uses no system node. Installing it enables, starts and replaces nothing;',
    ' /usr/share/doc/nmp/deployment.md.gz says how to switch a node over and back.',
    '',
  ].join('\n');
}

/** `shlibs:Depends` of `binary` as dpkg-shlibdeps computes it (`stageRoot` is `<dir>/debian/nmp`). */
export function sharedLibraryDepends(workDir: string, binary: string): string {
  mkdirSync(join(workDir, 'debian'), { recursive: true });
  writeFileSync(join(workDir, 'debian', 'control'), 'Source: nmp\n\nPackage: nmp\nArchitecture: amd64\n');
  let out: string;
  try {
    out = execFileSync('dpkg-shlibdeps', ['-O', '-xnmp', `-e${binary}`], {
      cwd: workDir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    throw new DebianError(`dpkg-shlibdeps (dpkg-dev): ${(err as Error).message}`);
  }
  const m = /^shlibs:Depends=(.*)$/m.exec(out);
  if (!m) throw new DebianError(`dpkg-shlibdeps printed no shlibs:Depends: ${out}`);
  return m[1]!.trim();
}

/** `md5sum` lines of every file below `root` but DEBIAN/ and the conffiles, as dh_md5sums writes them. */
export function md5sums(root: string, conffiles: readonly string[]): string {
  const skip = new Set(conffiles.map((c) => c.replace(/^\//, '')));
  return listFiles(root)
    .filter((f) => f.type === 'file' && !f.path.startsWith('DEBIAN/') && !skip.has(f.path))
    .map(
      (f) =>
        `${createHash('md5')
          .update(readFileSync(join(root, f.path)))
          .digest('hex')}  ${f.path}\n`,
    )
    .join('');
}

export interface ScriptLists {
  readonly prefix: string;
  /** Every unit file the package installs. */
  readonly units: readonly string[];
  /** What prerm stops on removal (template instances as a glob). */
  readonly stopUnits: readonly string[];
  /** Units that run as the service user (they get the drop-in where there is no neutron user). */
  readonly userUnits: readonly string[];
  /** Our directories and files below neutron's state_path, removed on purge. */
  readonly statePaths: readonly string[];
}

const SCRIPTS_DIR = fileURLToPath(new URL('../../debian/', import.meta.url));

/**
 * The unit lists of the maintainer scripts from the units the package installs (name -> text, as
 * render-units makes them): prerm stops the sockets first (a service whose socket still listens is started
 * again by the next connection), template instances by glob; the units that run as neutron, or make a
 * socket neutron owns, get nmp's own user where there is no neutron user.
 */
export function unitLists(
  units: ReadonlyMap<string, string>,
): Pick<ScriptLists, 'units' | 'stopUnits' | 'userUnits'> {
  const names = [...units.keys()];
  const sockets = names.filter((u) => u.endsWith('.socket'));
  return {
    units: names,
    stopUnits: [...sockets, ...names.filter((u) => !sockets.includes(u))].map((u) => u.replace('@.', '@*.')),
    userUnits: names.filter((u) => /^(User|SocketUser)=neutron$/m.test(units.get(u)!)),
  };
}

/** postinst, prerm and postrm with the lists filled in. */
export function maintainerScripts(l: ScriptLists): Map<string, string> {
  const words = (xs: readonly string[]) => xs.map((x) => (/[*?]/.test(x) ? `'${x}'` : x)).join(' ');
  const fill = (text: string) =>
    text
      .replaceAll('@PREFIX@', l.prefix)
      .replaceAll('@ALL_UNITS@', words(l.units))
      .replaceAll('@STOP_UNITS@', words(l.stopUnits))
      .replaceAll('@USER_UNITS@', words(l.userUnits))
      // Globs here must expand: unquoted.
      .replaceAll('@STATE_DIRS@', l.statePaths.join(' '));
  const out = new Map<string, string>();
  for (const name of ['postinst', 'prerm', 'postrm']) {
    const text = fill(readFileSync(join(SCRIPTS_DIR, name), 'utf8'));
    if (/@[A-Z_]+@/.test(text))
      throw new DebianError(`${name}: placeholder left: ${/@[A-Z_]+@/.exec(text)![0]}`);
    out.set(name, text);
  }
  return out;
}

/** Static files beside the scripts (the lintian overrides). */
export function debianFile(name: string): string {
  return readFileSync(join(SCRIPTS_DIR, name), 'utf8');
}

const EXPAT = `Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO
EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE
USE OR OTHER DEALINGS IN THE SOFTWARE.`;

const ISC = `Permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is
hereby granted, provided that the above copyright notice and this permission notice appear in all copies.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS SOFTWARE
INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF
USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.`;

/** SPDX identifiers of npm's package.json as DEP-5 short names, with their texts. */
const LICENSES: Record<string, { readonly dep5: string; readonly text: string }> = {
  MIT: { dep5: 'Expat', text: EXPAT },
  ISC: { dep5: 'ISC', text: ISC },
};

/** A DEP-5 field value: continuation lines indented, empty lines as ` .`. */
const field = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => (l.trim() === '' ? ' .' : ` ${l}`))
    .join('\n');

/** Copyright lines a licence file states (`Copyright (c) 2016 Matteo Collina ...`). */
function copyrightLines(m: BundledModule): string[] {
  const lines = (m.licenseText ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(copyright|\(c\)|©)/i.test(l) && !/notice|holders? be liable/i.test(l))
    .map((l) => l.replace(/^copyright\s*(\(c\)|©)?\s*/i, ''));
  return lines.length > 0 ? lines : [`${m.author ?? `the authors of ${m.name}`}`];
}

export class LicenseError extends DebianError {}

/** /usr/share/doc/nmp/copyright in the machine-readable format. */
export function copyrightFile(modules: readonly BundledModule[], nodeVersion: string): string {
  const used = new Map<string, string>();
  for (const m of modules) {
    const l = LICENSES[m.license];
    if (!l) throw new LicenseError(`${m.name}@${m.version}: licence '${m.license}' has no DEP-5 text here`);
    used.set(m.license, l.dep5);
  }
  const bundled = [...new Set(used.values())].sort();
  const holders = modules.flatMap((m) => copyrightLines(m).map((c) => `${c} (${m.name})`));
  return [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    'Upstream-Name: nmp',
    'Comment: The program bundles under /usr/lib/nmp/packages contain npm packages; each one, its',
    ' version and its own licence file are listed in /usr/share/doc/nmp/THIRD-PARTY-LICENSES.gz.',
    ` /usr/lib/nmp/bin/node is the Node.js ${nodeVersion} runtime; its LICENSE, which covers node and`,
    ' every library built into it, is /usr/share/doc/nmp/node-LICENSE.gz.',
    '',
    'Files: *',
    'Copyright: nmp developers',
    'License: Apache-2.0',
    '',
    'Files: usr/lib/nmp/packages/*',
    `Copyright: nmp developers\n${holders.map((h) => ` ${h}`).join('\n')}`,
    `License: Apache-2.0 and ${bundled.join(' and ')}`,
    '',
    'Files: usr/lib/nmp/bin/node',
    'Copyright: Node.js contributors and the authors of its dependencies',
    'License: Node.js',
    '',
    'License: Apache-2.0',
    ' On Debian systems, the full text of the Apache License, Version 2.0 is in',
    ' /usr/share/common-licenses/Apache-2.0.',
    '',
    ...bundled.flatMap((name) => {
      const text = Object.values(LICENSES).find((l) => l.dep5 === name)!.text;
      return [`License: ${name}`, field(text), ''];
    }),
    'License: Node.js',
    ' Node.js is released under the MIT (Expat) licence; the libraries built into it are under their own',
    ' licences. All of them are reproduced in /usr/share/doc/nmp/node-LICENSE.gz.',
    '',
  ].join('\n');
}

/** Every bundled npm package with its version, licence and licence file. */
export function thirdPartyLicenses(modules: readonly BundledModule[]): string {
  const out = [
    'npm packages bundled into the programs of nmp (/usr/lib/nmp/packages/*/dist/src/*.js), with the',
    'licence file each one ships.',
    '',
  ];
  for (const m of modules)
    out.push(
      '='.repeat(78),
      `${m.name} ${m.version} (${m.license})`,
      '='.repeat(78),
      '',
      (m.licenseText ?? `No licence file in the package; package.json says ${m.license}.`).trim(),
      '',
    );
  return `${out.join('\n')}\n`;
}

/** A Debian changelog entry for this build (the package is native: the changelog is ours). */
export function changelog(version: string, maintainer: string, epochSeconds: number, commit: string): string {
  const date = new Date(epochSeconds * 1000).toUTCString().replace('GMT', '+0000');
  return [
    `nmp (${version}) unstable; urgency=medium`,
    '',
    `  * Release ${version}${commit ? ` built from commit ${commit}` : ''}.`,
    '',
    ` -- ${maintainer}  ${date}`,
    '',
  ].join('\n');
}

/** `dpkg-deb --build` with root ownership, fixed times and a fixed compressor setting. */
export function buildDeb(root: string, out: string, epochSeconds: number): void {
  try {
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '-z6', '--threads-max=1', '--build', root, out], {
      env: { ...process.env, SOURCE_DATE_EPOCH: String(epochSeconds) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    throw new DebianError(`dpkg-deb --build: ${e.stderr?.toString().trim() || e.message}`);
  }
}
