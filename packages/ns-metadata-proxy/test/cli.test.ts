/* The proxy's command line as an operator meets it: --help, --version, and one-line errors with exit 2. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

function run(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
}

test('--help explains the binds and the ids; --version prints the version', () => {
  const help = run('--help');
  assert.equal(help.status, 0);
  for (const word of [
    '--bind',
    '--network-id',
    '--router-id',
    '--ovn-network-id',
    '--metadata-proxy-socket',
    '--haproxy-config',
  ]) {
    assert.ok(help.stdout.includes(word), `--help lacks ${word}`);
  }
  const version = run('--version');
  assert.equal(version.status, 0);
  assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
});

for (const [what, args, message] of [
  ['an unknown flag', ['--bind', '127.0.0.1:0', '--network-id', 'n', '--no-such-flag'], /Unknown argument/],
  [
    'an invalid address',
    ['--bind', '999.1.1.1:80', '--network-id', 'n'],
    /invalid bind address '999\.1\.1\.1:80'/,
  ],
  ['no id', ['--bind', '127.0.0.1:0'], /one of --network-id, --router-id or --ovn-network-id is required/],
  [
    'two ids',
    ['--bind', '127.0.0.1:0', '--network-id', 'n', '--router-id', 'r'],
    /only one of .*got --network-id and --router-id/,
  ],
  [
    'an OVN id with a router id',
    ['--bind', '127.0.0.1:0', '--ovn-network-id', 'n', '--router-id', 'r'],
    /only one of .*got --router-id and --ovn-network-id/,
  ],
  ['an invalid OVN id', ['--bind', '127.0.0.1:0', '--ovn-network-id', 'a/b'], /invalid ovn id 'a\/b'/],
  [
    'a missing haproxy config',
    ['--haproxy-config', '/nonexistent/x.conf'],
    /--haproxy-config .*x\.conf.*ENOENT/,
  ],
  [
    'a bad number',
    ['--bind', '127.0.0.1:0', '--network-id', 'n', '--max-connections', 'lots'],
    /max-connections.*'lots'.*integer/,
  ],
] as const) {
  test(`${what}: one clear line on stderr and exit 2`, () => {
    const r = run(...args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr.split('\n')[0]!, /^ns-metadata-proxy: /);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  });
}
