/*
 * The command lines as an operator types them. `--config-file F` may come before or after a subcommand
 * (yargs' greedy arrays used to read the subcommand as a second config file and lose it), and a bad value of
 * an enum flag is one line on stderr, in the same shape as every other bad value.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@nmp/testkit';
import { CLI, ROOT } from './fault-harness.js';

const HOOKS = join(ROOT, 'packages/metadata-hooks/dist/src/cli.js');
const DAEMON = join(ROOT, 'packages/metadata-proxy-daemon/dist/src/cli.js');

function run(cli: string, args: readonly string[]) {
  return spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    // Nothing of the caller's environment may steer the programs (NMP_* would).
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
}

test('metadata-hooks: --config-file before or after `status` is read, and status runs', (t) => {
  const dir = tempDir(t, 'nmp-cli-');
  const state = join(dir, 'hooks');
  mkdirSync(state);
  const record = {
    kind: 'dhcp',
    id: 'net-from-the-config-file',
    namespace: 'qdhcp-net-from-the-config-file',
    identity: { mode: 'network', id: 'net-from-the-config-file' },
    binds: ['169.254.169.254:80'],
    pidFile: join(dir, 'pids', 'net-from-the-config-file.pid.ns-metadata-proxy'),
    proxy: 'hooks',
    updatedAt: new Date().toISOString(),
  };
  writeFileSync(join(state, 'dhcp-net-from-the-config-file.json'), JSON.stringify(record));
  const conf = join(dir, 'hooks.ini');
  writeFileSync(
    conf,
    `[DEFAULT]\nstate_path = ${dir}\nhooks_state_dir = ${state}\nexternal_pids = ${join(dir, 'pids')}\n`,
  );
  for (const args of [
    ['--config-file', conf, 'status'],
    ['status', '--config-file', conf],
    ['--config-file', conf, 'status', '--json'],
  ]) {
    const r = run(HOOKS, args);
    // The record's proxy is not running: status says so and exits 3; the record proves the file was read.
    assert.equal(r.status, 3, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /net-from-the-config-file/, args.join(' '));
    assert.equal(r.stderr, '', args.join(' '));
  }
});

test('metadata-proxy-daemon: --config-file before or after each subcommand is read', (t) => {
  const dir = tempDir(t, 'nmp-cli-');
  const control = join(dir, 'nobody-listens-here.sock');
  const conf = join(dir, 'daemon.ini');
  writeFileSync(conf, `[DEFAULT]\nstate_path = ${dir}\ndaemon_control_socket = ${control}\n`);
  const attach = ['attach', '--namespace', 'qdhcp-x', '--network-id', 'x', '--bind', '127.0.0.1:80'];
  const detach = ['detach', '--namespace', 'qdhcp-x'];
  for (const args of [
    ['--config-file', conf, 'status'],
    ['status', '--config-file', conf],
    ['--config-file', conf, ...attach],
    [...attach, '--config-file', conf],
    ['--config-file', conf, ...detach],
    [...detach, '--config-file', conf],
  ]) {
    const r = run(DAEMON, args);
    // No daemon runs on the socket the file names: the command ran and used the file's socket. status
    // reports an unreachable daemon as unhealthy (3, on stdout); attach and detach fail (1, on stderr).
    const unreachable = `metadata proxy daemon not reachable on ${control} (ENOENT)`;
    if (args.includes('status')) {
      assert.equal(r.status, 3, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.ok(r.stdout.startsWith(`daemon UNREACHABLE: ${unreachable}; `), r.stdout);
      assert.equal(r.stderr, '', args.join(' '));
      continue;
    }
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.equal(r.stderr, `metadata-proxy-daemon: ${unreachable}\n`, args.join(' '));
  }
});

test('metadata-proxy-daemon attach: --bind repeated collects every bind and swallows nothing', (t) => {
  const dir = tempDir(t, 'nmp-cli-');
  const control = join(dir, 'none.sock');
  const r = run(DAEMON, [
    'attach',
    '--bind',
    '127.0.0.1:80',
    '--bind',
    '[::1]:80',
    '--namespace',
    'qdhcp-x',
    '--network-id',
    'x',
    '--daemon-control-socket',
    control,
  ]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /not reachable on .*none\.sock/);
});

for (const [cli, program, args, flag, choices] of [
  [CLI.proxy, 'ns-metadata-proxy', ['--log-level', 'bogus'], 'log-level', 'trace, debug'],
  [CLI.agent, 'metadata-agent', ['--resolver', 'bogus'], 'resolver', 'auto, rpc, neutron, inventory, ovn'],
  [HOOKS, 'metadata-hooks', ['--proxy-mode', 'bogus', 'status'], 'proxy-mode', 'process, daemon'],
  [HOOKS, 'metadata-hooks', ['status', '--hop-limit', 'bogus'], 'hop-limit', 'off, token, all'],
  [DAEMON, 'metadata-proxy-daemon', ['--netns-exec', 'bogus', 'status'], 'netns-exec', 'nsenter, ip'],
] as const) {
  test(`${program} ${args.join(' ')}: one line on stderr, exit 2`, () => {
    const r = run(cli, args);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `${program}: flag --${flag} = 'bogus': expected one of ${choices}${r.stderr.slice(r.stderr.indexOf(choices) + choices.length)}`,
    );
    assert.equal(r.stderr.split('\n').length, 2, `not one line:\n${r.stderr}`);
  });
}

test('a bad positional choice is one line too (and the usual hint)', () => {
  const r = run(HOOKS, ['dhcp', 'bogus', 'net-1']);
  assert.equal(r.status, 2);
  const lines = r.stderr.trimEnd().split('\n');
  assert.match(lines[0]!, /^metadata-hooks: Invalid values: Argument: action, Given: "bogus"/);
  assert.deepEqual(lines.slice(1), ["Try 'metadata-hooks --help'."]);
});

test('--help still lists the choices of an enum flag', () => {
  const r = run(CLI.proxy, ['--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--log-level[^\n]*\[choices: trace, debug, info, warn, error, fatal\]/);
});
