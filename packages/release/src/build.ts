/*
 * `npm run package`: the release artefacts from the built tree.
 *
 *   1. the release tree: bundles (bundle.ts), bin/node (runtime.ts), bin/ wrappers (wrappers.ts);
 *   2. man pages from the staged programs' own --help and their schemas (manpages.ts), example
 *      configuration from the schemas (examples.ts), the units `render-units --layout release` makes;
 *   3. the Debian package root (the tree under /usr/lib/nmp, /usr/bin links, units, /etc/nmp conffiles,
 *      docs, man pages, lintian overrides, DEBIAN/) and the tarball root (the same tree with share/ and
 *      etc/ inside it, so it runs from wherever it is unpacked);
 *   4. fixed modes and times everywhere, dpkg-deb and tar+gzip, SHA256SUMS.
 *
 * The same commit (and SOURCE_DATE_EPOCH, by default the commit's time) gives the same bytes: nothing
 * here reads the clock, the umask, the user or the host.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import type { ProgramErrorCode, Schema } from '@nmp/common';
import { agentSchema } from '@nmp/metadata-agent';
import { hooksOptions, renderUnits } from '@nmp/metadata-hooks';
import { daemonOptions } from '@nmp/metadata-proxy-daemon';
import { proxyOptions } from '@nmp/ns-metadata-proxy';
import { provisionerSchema } from '@nmp/ovn-provisioner';
import { bundlePrograms } from './bundle.js';
import {
  buildDeb,
  changelog,
  checkDebianVersion,
  controlFile,
  copyrightFile,
  debianFile,
  maintainerScripts,
  md5sums,
  sharedLibraryDepends,
  thirdPartyLicenses,
  unitLists,
} from './debian.js';
import { sampleIni } from './examples.js';
import { DEB_PREFIX, PROGRAMS, type ProgramSpec, REPO_ROOT } from './layout.js';
import { renderManPage, type SubcommandHelp } from './manpages.js';
import { installRuntime } from './runtime.js';
import { buildTarball } from './tarball.js';
import { gzip9, installedSizeKiB, normalizeTree } from './tree.js';
import { haproxyWrapper, programWrapper } from './wrappers.js';

export const DEFAULT_MAINTAINER = 'nmp developers <nmp-dev@lists.openstack.org>';

export interface ReleaseOptions {
  /** Default: the repository's package.json version. */
  readonly version?: string;
  /** Default: <repository>/release. */
  readonly outDir?: string;
  /** Default: $SOURCE_DATE_EPOCH, else the time of the last commit. */
  readonly sourceDateEpoch?: number;
  readonly nodeLicense?: string;
  readonly maintainer?: string;
  /** Build the tarball too (default true; the Debian package is always built). */
  readonly tarball?: boolean;
  /** Keep the staging directory (for inspection); its path is in the result. */
  readonly keepWork?: boolean;
  readonly log?: (message: string) => void;
}

export interface ReleaseArtefacts {
  readonly version: string;
  readonly deb: string;
  readonly tarball?: string;
  readonly sums: string;
  readonly workDir?: string;
}

export class ReleaseError extends Error {
  readonly code = 'NMP_RELEASE' satisfies ProgramErrorCode;
}

/** The files under /etc/nmp the package owns (conffiles), with their modes. */
const CONFFILE_MODES: ReadonlyMap<string, number> = new Map([
  ['etc/nmp/metadata-proxy-daemon.ini', 0o644],
  ['etc/nmp/metadata-hooks.ini', 0o644],
  ['etc/nmp/metadata-agent.env', 0o600],
]);

/** The docs that ship (README first; the maintainers' release page too). */
function docFiles(): string[] {
  const docs = readdirSync(join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => join('docs', f));
  return ['README.md', ...docs];
}

function repoVersion(): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

function git(args: string[]): string {
  const r = spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

export function sourceDateEpoch(explicit?: number): number {
  if (explicit !== undefined) return explicit;
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && env !== '') {
    if (!/^\d+$/.test(env)) throw new ReleaseError(`SOURCE_DATE_EPOCH='${env}' is not a number of seconds`);
    return Number(env);
  }
  const commit = git(['log', '-1', '--format=%ct']);
  if (commit === '')
    throw new ReleaseError(
      'no SOURCE_DATE_EPOCH and no git commit to take the time from: set SOURCE_DATE_EPOCH',
    );
  return Number(commit);
}

/**
 * The schema whose options each program reads from its INI files (for its man page; the drift test checks
 * that docs/configuration.md describes every option of each).
 */
export const PROGRAM_SCHEMAS: Readonly<Record<ProgramSpec['name'], Schema>> = {
  'metadata-agent': agentSchema,
  'ns-metadata-proxy': proxyOptions,
  'metadata-hooks': hooksOptions,
  'metadata-proxy-daemon': daemonOptions,
  'ovn-metadata-provisioner': provisionerSchema,
};

const FILES: Readonly<Record<ProgramSpec['name'], readonly (readonly [string, string])[]>> = {
  'metadata-agent': [
    ['/etc/neutron/neutron.conf', 'transport_url (RPC to neutron-server), state_path, as neutron reads it'],
    ['/etc/neutron/metadata_agent.ini', "neutron's metadata agent settings, read as they are"],
    ['/etc/nmp/metadata-agent.env', 'NMP_METADATA_PROXY_SHARED_SECRET=... and other secrets (mode 0600)'],
    ['/var/lib/neutron/metadata_proxy', 'the UNIX socket the proxies forward to'],
    ['/lib/systemd/system/nmp-metadata-agent.service', 'the unit'],
  ],
  'ns-metadata-proxy': [
    ['/etc/nmp/ns-metadata-proxy/<namespace>.ini', 'settings of nmp-ns-metadata-proxy@<namespace>.service'],
    ['/lib/systemd/system/nmp-ns-metadata-proxy@.service', 'the template unit'],
  ],
  'metadata-hooks': [
    ['/etc/nmp/metadata-hooks.ini', 'example settings (give it with --config-file)'],
    ['/var/lib/neutron/nmp-metadata-hooks/', 'what each add did, and the proxies\u2019 output'],
    [
      `${DEB_PREFIX}/bin/haproxy`,
      'the haproxy drop-in (haproxy-drop-in enable links /usr/sbin/haproxy to it)',
    ],
  ],
  'metadata-proxy-daemon': [
    ['/etc/nmp/metadata-proxy-daemon.ini', 'the settings nmp-metadata-proxy-daemon.service reads'],
    ['/var/lib/neutron/nmp-metadata-proxy-daemon/', 'control socket and attachments.json'],
    ['/lib/systemd/system/nmp-metadata-proxy-daemon.service', 'the unit'],
  ],
  'ovn-metadata-provisioner': [
    [
      '/etc/neutron/neutron_ovn_metadata_agent.ini',
      "neutron's OVN metadata agent settings, read as they are",
    ],
    ['/var/lib/neutron/nmp-ovn-provisioner/status.json', 'what each network is'],
    ['/lib/systemd/system/nmp-ovn-metadata-provisioner.service', 'the unit'],
  ],
};

/** `--help` of a staged program and of each of its commands (as yargs lists them). */
function helpTexts(bin: string, program: string): { help: string; subcommands: SubcommandHelp[] } {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
  // Defaults that name the release tree (render-units --install-dir) say where the package installs it.
  const tree = dirname(bin);
  const helpOf = (args: string[]) => {
    const r = spawnSync(join(bin, program), [...args, '--help'], { env, encoding: 'utf8' });
    if (r.status !== 0)
      throw new ReleaseError(`${program} ${args.join(' ')} --help: exit ${r.status}: ${r.stderr}`);
    return r.stdout.replaceAll(tree, DEB_PREFIX);
  };
  const help = helpOf([]);
  const commands = /\nCommands:\n((?: {2}.*\n?)+)/.exec(help)?.[1] ?? '';
  const subcommands = commands
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[1])
    .filter((w): w is string => w !== undefined && !w.startsWith('['))
    .map((name) => ({ name, help: helpOf([name]) }));
  return { help, subcommands };
}

function write(file: string, content: string | Buffer, mode?: number): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content, mode !== undefined ? { mode } : {});
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

export async function buildRelease(o: ReleaseOptions = {}): Promise<ReleaseArtefacts> {
  const log = o.log ?? (() => {});
  const version = o.version ?? repoVersion();
  checkDebianVersion(version);
  const epoch = sourceDateEpoch(o.sourceDateEpoch);
  const maintainer = o.maintainer ?? DEFAULT_MAINTAINER;
  const outDir = o.outDir ?? join(REPO_ROOT, 'release');
  const work = mkdtempSync(join(tmpdir(), 'nmp-release-'));
  try {
    // 1. The release tree.
    const tree = join(work, 'tree');
    let t = Date.now();
    const modules = await bundlePrograms(tree, version);
    log(`bundled ${PROGRAMS.length} programs with ${modules.length} npm packages (${Date.now() - t} ms)`);
    const bin = join(tree, 'bin');
    mkdirSync(bin, { recursive: true });
    t = Date.now();
    const runtime = installRuntime(join(bin, 'node'), o.nodeLicense);
    log(`runtime node ${runtime.version}, stripped (${Date.now() - t} ms)`);
    for (const p of PROGRAMS) write(join(bin, p.name), programWrapper(p), 0o755);
    write(join(bin, 'haproxy'), haproxyWrapper(), 0o755);

    // 2. What is generated from the programs and schemas.
    const date = new Date(epoch * 1000).toISOString().slice(0, 10);
    const seeAlso = PROGRAMS.map((p) => `${p.name}(${p.section})`);
    const man = new Map<string, Buffer>();
    for (const p of PROGRAMS) {
      const { help, subcommands } = helpTexts(bin, p.name);
      const page = renderManPage({
        program: p,
        version,
        date,
        help,
        subcommands,
        schema: PROGRAM_SCHEMAS[p.name],
        files: FILES[p.name],
        seeAlso: seeAlso.filter((s) => !s.startsWith(`${p.name}(`)),
      });
      man.set(`man${p.section}/${p.name}.${p.section}.gz`, gzip9(page));
    }
    const etc = new Map<string, string>([
      [
        'etc/nmp/metadata-proxy-daemon.ini',
        sampleIni(
          [
            'Settings of nmp-metadata-proxy-daemon.service (metadata-proxy-daemon(8), deployment.md section 7).',
            'Every option is shown with its default, commented out. Set metadata_proxy_user and',
            'metadata_proxy_group (neutron, or nmp on a node without a neutron user): without them the serving',
            'worker runs as root. netns_exec = python suits nodes with many namespaces.',
          ],
          daemonOptions,
        ),
      ],
      [
        'etc/nmp/metadata-hooks.ini',
        sampleIni(
          [
            'Settings of metadata-hooks (metadata-hooks(8), deployment.md section 5), given with',
            '--config-file /etc/nmp/metadata-hooks.ini. Every option is shown with its default, commented out.',
          ],
          hooksOptions,
        ),
      ],
      [
        'etc/nmp/metadata-agent.env',
        [
          '# Secrets of nmp-metadata-agent.service, kept out of neutron.conf and metadata_agent.ini (mode 0600):',
          '# NMP_METADATA_PROXY_SHARED_SECRET=<nova.conf [neutron] metadata_proxy_shared_secret>',
          '# NMP_TRANSPORT_URL=rabbit://user:password@host:5672/',
          '',
        ].join('\n'),
      ],
    ]);
    const examples = new Map<string, string>([
      [
        'metadata_agent.ini',
        sampleIni(
          [
            'Every option metadata-agent reads, with its default (neutron.conf and metadata_agent.ini hold them',
            'on a neutron node; metadata-agent(8), configuration.md).',
          ],
          agentSchema,
        ),
      ],
      [
        'ns-metadata-proxy.ini',
        sampleIni(
          [
            'Settings of one proxy: copy to /etc/nmp/ns-metadata-proxy/<namespace>.ini for',
            'nmp-ns-metadata-proxy@<namespace>.service, with bind and network_id or router_id set.',
          ],
          proxyOptions,
        ),
      ],
      [
        'ovn-metadata-provisioner.ini',
        sampleIni(
          ["Every option ovn-metadata-provisioner reads (neutron's files hold them on an OVN chassis)."],
          provisionerSchema,
        ),
      ],
    ]);
    const units = renderUnits({
      layout: 'release',
      installDir: DEB_PREFIX,
      node: `${DEB_PREFIX}/bin/node`,
      user: 'neutron',
      group: 'neutron',
      configDir: '/etc/neutron',
      statePath: '/var/lib/neutron',
    });
    const docs = new Map<string, Buffer>();
    for (const f of docFiles()) docs.set(`${basename(f)}.gz`, gzip9(readFileSync(join(REPO_ROOT, f))));
    docs.set('node-LICENSE.gz', gzip9(readFileSync(runtime.licenseFile)));
    docs.set('THIRD-PARTY-LICENSES.gz', gzip9(thirdPartyLicenses(modules)));
    for (const [name, text] of examples) docs.set(`examples/${name}`, Buffer.from(text));
    const copyright = copyrightFile(modules, runtime.version);
    const commit = git(['rev-parse', '--short=12', 'HEAD']);

    // 3a. The Debian package root.
    const deb = join(work, 'deb');
    cpSync(tree, join(deb, DEB_PREFIX.slice(1)), { recursive: true, verbatimSymlinks: true });
    for (const p of PROGRAMS) {
      mkdirSync(join(deb, 'usr/bin'), { recursive: true });
      symlinkSync(`../lib/nmp/bin/${p.name}`, join(deb, 'usr/bin', p.name));
    }
    for (const [name, text] of units) write(join(deb, 'lib/systemd/system', name), text);
    for (const [path, text] of etc) write(join(deb, path), text);
    mkdirSync(join(deb, 'etc/nmp/ns-metadata-proxy'), { recursive: true });
    for (const [name, data] of docs) write(join(deb, 'usr/share/doc/nmp', name), data);
    write(join(deb, 'usr/share/doc/nmp/copyright'), copyright);
    write(join(deb, 'usr/share/doc/nmp/changelog.gz'), gzip9(changelog(version, maintainer, epoch, commit)));
    for (const [name, data] of man) write(join(deb, 'usr/share/man', name), data);
    write(join(deb, 'usr/share/lintian/overrides/nmp'), debianFile('lintian-overrides'));
    const conffiles = [...CONFFILE_MODES.keys()].map((p) => `/${p}`);
    const scripts = maintainerScripts({
      prefix: DEB_PREFIX,
      ...unitLists(units),
      statePaths: statePaths(),
    });
    for (const [name, text] of scripts) write(join(deb, 'DEBIAN', name), text, 0o755);
    write(join(deb, 'DEBIAN/conffiles'), `${conffiles.join('\n')}\n`);
    const modes = new Map<string, number>([...CONFFILE_MODES]);
    for (const name of scripts.keys()) modes.set(`DEBIAN/${name}`, 0o755);
    normalizeTree(deb, epoch, modes);
    write(join(deb, 'DEBIAN/md5sums'), md5sums(deb, conffiles));
    const size = installedSizeKiB(deb, (p) => p === 'DEBIAN' || p.startsWith('DEBIAN/'));
    const depends = sharedLibraryDepends(work, relative(work, join(deb, DEB_PREFIX.slice(1), 'bin/node')));
    write(
      join(deb, 'DEBIAN/control'),
      controlFile({
        version,
        installedSizeKiB: size,
        sharedLibraryDepends: depends,
        maintainer,
        nodeVersion: runtime.version,
      }),
    );
    normalizeTree(deb, epoch, modes);

    // 3b. The tarball root: the same tree, with what the package puts elsewhere inside it.
    const top = `nmp-${version}`;
    const tar = join(work, 'tar', top);
    cpSync(tree, tar, { recursive: true, verbatimSymlinks: true });
    for (const [path, text] of etc) write(join(tar, path), text);
    mkdirSync(join(tar, 'etc/nmp/ns-metadata-proxy'), { recursive: true });
    for (const [name, data] of docs) write(join(tar, 'share/doc/nmp', name), data);
    write(join(tar, 'share/doc/nmp/copyright'), copyright.replaceAll('usr/lib/nmp/', ''));
    write(join(tar, 'share/doc/nmp/LICENSE'), readFileSync(join(REPO_ROOT, 'LICENSE')));
    for (const [name, data] of man) write(join(tar, 'share/man', name), data);
    normalizeTree(join(work, 'tar'), epoch, new Map([...CONFFILE_MODES].map(([p, m]) => [`${top}/${p}`, m])));

    // 4. The artefacts.
    mkdirSync(outDir, { recursive: true });
    const debFile = join(outDir, `nmp_${version}_amd64.deb`);
    const tarFile = join(outDir, `nmp-${version}-linux-x64.tar.gz`);
    t = Date.now();
    buildDeb(deb, debFile, epoch);
    log(
      `${basename(debFile)}: ${(statSync(debFile).size / 1e6).toFixed(1)} MB, installed ${(size / 1024).toFixed(1)} MB (${Date.now() - t} ms)`,
    );
    const built = [debFile];
    if (o.tarball !== false) {
      t = Date.now();
      buildTarball(join(work, 'tar'), top, tarFile, epoch);
      log(`${basename(tarFile)}: ${(statSync(tarFile).size / 1e6).toFixed(1)} MB (${Date.now() - t} ms)`);
      built.push(tarFile);
    }
    const sums = join(outDir, 'SHA256SUMS');
    writeFileSync(sums, built.map((f) => `${sha256(f)}  ${basename(f)}\n`).join(''));
    return {
      version,
      deb: debFile,
      ...(o.tarball !== false ? { tarball: tarFile } : {}),
      sums,
      ...(o.keepWork ? { workDir: work } : {}),
    };
  } finally {
    if (!o.keepWork) rmSync(work, { recursive: true, force: true });
  }
}

/**
 * What our programs keep below neutron's state_path by default (purge removes it): the nmp-* directories
 * the schemas name, the hooks' pid files and the drop-in's logs beside neutron's configs.
 */
export function statePaths(statePath = '/var/lib/neutron'): string[] {
  const dirs = new Set<string>();
  for (const schema of [hooksOptions, daemonOptions, provisionerSchema] as Schema[])
    for (const d of Object.values(schema)) {
      const m = typeof d.default === 'string' ? /^\$state_path\/(nmp-[^/]+)/.exec(d.default) : null;
      if (m) dirs.add(`${statePath}/${m[1]}`);
    }
  return [
    ...[...dirs].sort(),
    `${statePath}/external/pids/*.pid.ns-metadata-proxy`,
    `${statePath}/ns-metadata-proxy/*.conf.log`,
  ];
}
