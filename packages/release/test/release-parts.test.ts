/*
 * The release builder's parts, without building: man pages from help text and schemas, example INI files
 * that change nothing, the control and copyright files, the maintainer scripts' lists, and the sh
 * wrappers run for real (through a symlink, as /usr/bin/<program> is).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, SERVICE_NODE_FLAGS } from '@nmp/common';
import { hooksOptions, renderUnits } from '@nmp/metadata-hooks';
import { daemonOptions } from '@nmp/metadata-proxy-daemon';
import { tempDir } from '@nmp/testkit';
import { statePaths } from '../src/build.js';
import {
  checkDebianVersion,
  controlFile,
  copyrightFile,
  maintainerScripts,
  md5sums,
  unitLists,
} from '../src/debian.js';
import { sampleIni } from '../src/examples.js';
import { entryPoints, PROGRAMS } from '../src/layout.js';
import { parseHelp, renderManPage, roff } from '../src/manpages.js';
import { checkNodeVersion } from '../src/runtime.js';
import { haproxyWrapper, programWrapper } from '../src/wrappers.js';

const HELP = `prog <command>

Does things.

Commands:
  prog run        run it  [default]
  prog status     say how it is

Options:
      --state-path  Where neutron keeps its state [default: /var/lib/neutron]  [string]
  -h, --help        Show help  [boolean]

[ovn] options:
      --ovn-sb-connection  the Southbound  [string]
`;

test('parseHelp: usage, description, sections with their entries (also [section] options:)', () => {
  const h = parseHelp(HELP);
  assert.equal(h.usage, 'prog <command>');
  assert.deepEqual(h.description, ['Does things.']);
  assert.deepEqual(
    h.sections.map((s) => [s.title, s.entries.map((e) => e.term)]),
    [
      ['Commands', ['prog run', 'prog status']],
      ['Options', ['--state-path', '-h, --help']],
      ['[ovn] options', ['--ovn-sb-connection']],
    ],
  );
  assert.equal(
    h.sections[1]!.entries[0]!.text,
    'Where neutron keeps its state [default: /var/lib/neutron]  [string]',
  );
});

test('roff: hyphens and backslashes escaped, no line may start a request', () => {
  assert.equal(roff('--x a\\b'), '\\-\\-x a\\eb');
  assert.equal(roff(".hidden\n'also"), "\\&.hidden\n\\&'also");
});

test('man page: every schema option with its default and environment variable, command details, sections', () => {
  const page = renderManPage({
    program: PROGRAMS.find((p) => p.name === 'metadata-proxy-daemon')!,
    version: '1.2.3',
    date: '2026-12-07',
    help: HELP,
    subcommands: [
      {
        name: 'status',
        help: 'prog status\n\nsay how it is\n\nOptions:\n      --json  as JSON  [boolean]\n',
      },
    ],
    schema: daemonOptions,
    files: [['/etc/nmp/metadata-proxy-daemon.ini', 'settings']],
    seeAlso: ['metadata-agent(8)'],
  });
  assert.match(page, /^\.TH METADATA\\-PROXY\\-DAEMON 8 "2026-12-07" "nmp 1\.2\.3" "nmp"$/m);
  assert.match(page, /^\.SH NAME\nmetadata\\-proxy\\-daemon \\- /m);
  for (const d of Object.values(daemonOptions)) assert.ok(page.includes(`\\fB${roff(d.name)}\\fR`), d.name);
  assert.ok(page.includes('NMP_NETNS_EXEC'), 'environment variables are named');
  // A command's own flags are listed with it; the shared ones only once.
  assert.match(page, /\.SS status[\s\S]*\\-\\-json/);
  assert.equal(page.split('\\fB\\-\\-state\\-path\\fR').length - 1, 1);
  for (const s of [
    'SYNOPSIS',
    'DESCRIPTION',
    'COMMANDS',
    'OPTIONS',
    'INI FILE OPTIONS',
    'EXIT STATUS',
    'FILES',
    'SEE ALSO',
  ])
    assert.match(page, new RegExp(`^\\.SH ${s}$`, 'm'), s);
  assert.doesNotMatch(page, /^[.'](?!\\"|TH|SH|SS|TP|PP|br|RS|RE)/m, 'no stray roff request');
});

test('example INI: every option present, all commented out, so the file changes nothing', (t) => {
  const dir = tempDir(t, 'nmp-release-test-');
  const text = sampleIni(['header line', '', 'second'], hooksOptions);
  assert.match(text, /^# header line\n#\n# second\n/);
  for (const d of Object.values(hooksOptions)) assert.match(text, new RegExp(`^#${d.name} =`, 'm'), d.name);
  assert.doesNotMatch(text, /^[a-z_]+ =/m, 'an active option');
  const file = join(dir, 'hooks.ini');
  writeFileSync(file, text);
  const fromFile = loadConfig(hooksOptions, { flags: { 'config-file': file }, env: {} });
  const defaults = loadConfig(hooksOptions, { flags: {}, env: {} });
  assert.deepEqual(fromFile.config, defaults.config);
  assert.deepEqual(fromFile.warnings, []);
});

test('Debian version and node version checks', () => {
  for (const v of ['0.1.0', '1.0~rc1', '2.3+git20261207']) checkDebianVersion(v);
  for (const v of ['v0.1', '0.1.0-1', '0.1 0', '', '1.0;rm']) assert.throws(() => checkDebianVersion(v), v);
  checkNodeVersion('v20.18.1');
  checkNodeVersion('v22.0.0');
  assert.throws(() => checkNodeVersion('v20.18.0'), /20\.18\.1 or later/);
  assert.throws(() => checkNodeVersion('v18.19.0'));
});

test('control file: dependencies, no trailing space, description lines indented', () => {
  const c = controlFile({
    version: '0.1.0',
    installedSizeKiB: 90000,
    sharedLibraryDepends: 'libc6 (>= 2.34), libstdc++6 (>= 5.2)',
    maintainer: 'A <a@b.c>',
    nodeVersion: 'v20.20.2',
  });
  assert.match(c, /^Depends: libc6 \(>= 2\.34\), libstdc\+\+6 \(>= 5\.2\), adduser, iproute2, iptables$/m);
  assert.match(c, /^Recommends: python3$/m);
  assert.match(c, /^Installed-Size: 90000$/m);
  assert.doesNotMatch(c, / $/m);
  const afterDescription = c
    .split('\n')
    .slice(c.split('\n').findIndex((l) => l.startsWith('Description:')) + 1);
  for (const l of afterDescription.filter((x) => x !== '')) assert.match(l, /^ /);
});

test('copyright file: machine-readable, each licence with a text, unknown licences refused', () => {
  const text = copyrightFile(
    [
      {
        name: 'undici',
        version: '7.0.0',
        license: 'MIT',
        licenseText: 'MIT License\n\nCopyright (c) Matteo Collina and Undici contributors\n',
      },
      { name: 'y18n', version: '5.0.8', license: 'ISC', licenseText: 'Copyright (c) 2015, Contributors\n' },
    ],
    'v20.20.2',
  );
  assert.match(
    text,
    /^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\/$/m,
  );
  assert.match(text, /^License: Apache-2\.0 and Expat and ISC$/m);
  assert.match(text, /^ Matteo Collina and Undici contributors \(undici\)$/m);
  for (const l of ['Apache-2.0', 'Expat', 'ISC', 'Node.js'])
    assert.match(text, new RegExp(`^License: ${l}\\n `, 'm'));
  assert.throws(
    () => copyrightFile([{ name: 'x', version: '1', license: 'GPL-3.0' }], 'v20.20.2'),
    /GPL-3\.0/,
  );
});

test('maintainer scripts: every placeholder filled, valid sh, the lists from the code', () => {
  const scripts = maintainerScripts({
    prefix: '/usr/lib/nmp',
    units: ['nmp-metadata-agent.service', 'nmp-ns-metadata-proxy@.service'],
    stopUnits: ['nmp-metadata-agent.service', 'nmp-ns-metadata-proxy@*.service'],
    userUnits: ['nmp-metadata-agent.service'],
    statePaths: statePaths(),
  });
  for (const [name, text] of scripts) {
    const r = spawnSync('sh', ['-n'], { input: text });
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    assert.doesNotMatch(text, /@[A-Z_]+@/, name);
  }
  assert.match(scripts.get('prerm')!, /stop nmp-metadata-agent\.service 'nmp-ns-metadata-proxy@\*\.service'/);
  assert.match(scripts.get('prerm')!, /\/usr\/lib\/nmp\/bin\/metadata-hooks haproxy-drop-in disable/);
  assert.doesNotMatch(scripts.get('postinst')!, /systemctl (enable|start|restart)|deb-systemd-invoke/);
  assert.deepEqual(statePaths().slice(0, 3), [
    '/var/lib/neutron/nmp-metadata-hooks',
    '/var/lib/neutron/nmp-metadata-proxy-daemon',
    '/var/lib/neutron/nmp-ovn-provisioner',
  ]);
});

test("maintainer scripts' unit lists from the release units: sockets stopped first, the agent's socket owned by the service user", () => {
  const units = renderUnits({
    layout: 'release',
    installDir: '/usr/lib/nmp',
    node: '/usr/lib/nmp/bin/node',
    user: 'neutron',
    group: 'neutron',
    configDir: '/etc/neutron',
    statePath: '/var/lib/neutron',
  });
  const l = unitLists(units);
  assert.deepEqual(l.units, [...units.keys()]);
  for (const u of ['nmp-metadata-agent.socket', 'nmp-ns-metadata-proxy@.socket'])
    assert.ok(l.units.includes(u), u);
  assert.deepEqual(l.stopUnits.slice(0, 2), ['nmp-metadata-agent.socket', 'nmp-ns-metadata-proxy@*.socket']);
  assert.equal(l.stopUnits.length, l.units.length);
  assert.ok(l.stopUnits.includes('nmp-ns-metadata-proxy@*.service'));
  assert.deepEqual([...l.userUnits].sort(), [
    'nmp-metadata-agent.service',
    'nmp-metadata-agent.socket',
    'nmp-ns-metadata-proxy@.service',
  ]);
  const scripts = maintainerScripts({ prefix: '/usr/lib/nmp', ...l, statePaths: statePaths() });
  assert.match(
    scripts.get('prerm')!,
    /stop nmp-metadata-agent\.socket 'nmp-ns-metadata-proxy@\*\.socket' nmp-metadata-agent\.service /,
  );
  // Where there is no neutron user, postinst gives the socket a [Socket] drop-in, the services a [Service] one.
  const postinst = scripts.get('postinst')!;
  assert.match(postinst, /for unit in nmp-metadata-agent\.service nmp-metadata-agent\.socket /);
  assert.match(postinst, /\*\.socket\) printf '%s\\n\[Socket\]\\nSocketUser=nmp\\nSocketGroup=nmp\\n'/);
});

test('md5sums: every file but DEBIAN/ and the conffiles', (t) => {
  const root = tempDir(t, 'nmp-release-test-');
  mkdirSync(join(root, 'DEBIAN'));
  mkdirSync(join(root, 'etc/nmp'), { recursive: true });
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  writeFileSync(join(root, 'DEBIAN/control'), 'x');
  writeFileSync(join(root, 'etc/nmp/a.ini'), 'a');
  writeFileSync(join(root, 'usr/bin/b'), 'b');
  assert.equal(md5sums(root, ['/etc/nmp/a.ini']), '92eb5ffee6ae2fec3ad71c777531578f  usr/bin/b\n');
});

test('entry points: the five CLIs and the scripts the daemon starts as processes', () => {
  const e = entryPoints();
  for (const p of PROGRAMS) assert.ok(e.includes(`packages/${p.pkg}/dist/src/cli.js`), p.name);
  for (const f of ['worker.js', 'netns/helper.js', 'netns/batch-relay.js'])
    assert.ok(e.includes(`packages/metadata-proxy-daemon/dist/src/${f}`), f);
});

test('program wrapper: found through a symlink, runs the tree node with the service flags and all arguments', (t) => {
  const root = tempDir(t, 'nmp-release-test-');
  const tree = join(root, 'usr/lib/nmp');
  mkdirSync(join(tree, 'bin'), { recursive: true });
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  // A stand-in runtime that prints what it was asked to run.
  writeFileSync(join(tree, 'bin/node'), '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n');
  chmodSync(join(tree, 'bin/node'), 0o755);
  const agent = PROGRAMS.find((p) => p.name === 'metadata-agent')!;
  writeFileSync(join(tree, 'bin/metadata-agent'), programWrapper(agent), { mode: 0o755 });
  symlinkSync('../lib/nmp/bin/metadata-agent', join(root, 'usr/bin/metadata-agent'));
  const r = spawnSync(join(root, 'usr/bin/metadata-agent'), ['--config-file', 'a b.ini', ''], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n').slice(0, -1), [
    ...SERVICE_NODE_FLAGS,
    `${tree}/bin/../packages/metadata-agent/dist/src/cli.js`,
    '--config-file',
    'a b.ini',
    '',
  ]);
});

test("haproxy wrapper: neutron's metadata configs go to our compat front end, everything else to the real haproxy", (t) => {
  const root = tempDir(t, 'nmp-release-test-');
  const bin = join(root, 'lib/bin');
  mkdirSync(bin, { recursive: true });
  mkdirSync(join(root, 'sbin'));
  writeFileSync(join(bin, 'haproxy'), haproxyWrapper(), { mode: 0o755 });
  writeFileSync(join(bin, 'metadata-hooks'), '#!/bin/sh\necho "ours: $*"\n', { mode: 0o755 });
  symlinkSync(join(bin, 'haproxy'), join(root, 'sbin/haproxy'));
  const run = (...args: string[]) => spawnSync(join(root, 'sbin/haproxy'), args, { encoding: 'utf8' });
  // Without the diverted haproxy, a foreign config is an error that says why.
  const missing = run('-f', '/etc/haproxy/haproxy.cfg');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /haproxy\.nmp-real is missing/);
  writeFileSync(join(root, 'sbin/haproxy.nmp-real'), '#!/bin/sh\necho "real: $*"\n', { mode: 0o755 });
  assert.equal(
    run('-f', '/var/lib/neutron/ns-metadata-proxy/n1.conf').stdout,
    'ours: haproxy-compat -f /var/lib/neutron/ns-metadata-proxy/n1.conf\n',
  );
  assert.equal(
    run('-f', '/var/lib/neutron/ovn-metadata-proxy/n2.conf').stdout,
    'ours: haproxy-compat -f /var/lib/neutron/ovn-metadata-proxy/n2.conf\n',
  );
  assert.equal(
    run('-Ws', '-f', '/etc/haproxy/haproxy.cfg', '-p', '/run/haproxy.pid').stdout,
    'real: -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid\n',
  );
  assert.equal(run('-v').stdout, 'real: -v\n');
  assert.equal(run('-f', '/tmp/ns-metadata-proxy.conf').stdout, 'real: -f /tmp/ns-metadata-proxy.conf\n');
});
