/*
 * Pieces of the hooks that need no root: the proxy command line they build, the sockets status expects
 * for each bind, haproxy's command-line flags, and haproxy-kill refusing processes that are not proxies.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '@nmp/common';
import { haproxyKill, parseHaproxyArgs } from '../src/haproxy-compat.js';
import { pidFileFor } from '../src/hook-records.js';
import { hooksOptions, parseMark } from '../src/options.js';
import { proxyArgv, proxyProgram } from '../src/proxy-launch.js';
import { expectedSocket } from '../src/proxy-status.js';

const config = (flags: Record<string, unknown> = {}) => loadConfig(hooksOptions, { flags, env: {} }).config;

test('defaults follow neutron: paths under /var/lib/neutron, port 9697, mark 0x1', () => {
  const c = config();
  assert.equal(c.socketPath, '/var/lib/neutron/metadata_proxy');
  assert.equal(c.externalPids, '/var/lib/neutron/external/pids');
  assert.equal(c.metadataPort, 9697);
  assert.equal(parseMark(c.accessMark), 1);
  assert.equal(pidFileFor(c, 'net-1'), '/var/lib/neutron/external/pids/net-1.pid.ns-metadata-proxy');
  assert.equal(config({ 'state-path': '/srv/n' }).hooksStateDir, '/srv/n/nmp-metadata-hooks');
  assert.throws(() => config({ 'metadata-access-mark': '0x10000' }), /0xffff/);
  assert.throws(() => config({ 'iptables-chain-prefix': 'bad prefix' }), /letters/);
});

test('proxy argv: binds, identity, socket, pid file, user/group, extra config files', () => {
  const c = config({
    'metadata-proxy-user': 'nobody',
    'metadata-proxy-group': 'nogroup',
    'proxy-config-files': ['/etc/neutron/rate.ini'],
    'ns-metadata-proxy-command': '/usr/local/bin/ns-metadata-proxy',
  });
  assert.deepEqual(
    proxyArgv(
      c,
      { mode: 'network', id: 'n1' },
      ['169.254.169.254:80', '[fe80::a9fe:a9fe%tap1]:80'],
      '/p/n1.pid',
    ),
    [
      '/usr/local/bin/ns-metadata-proxy',
      '--bind',
      '169.254.169.254:80',
      '--bind',
      '[fe80::a9fe:a9fe%tap1]:80',
      '--network-id',
      'n1',
      '--metadata-proxy-socket',
      '/var/lib/neutron/metadata_proxy',
      '--pid-file',
      '/p/n1.pid',
      '--metadata-proxy-user',
      'nobody',
      '--metadata-proxy-group',
      'nogroup',
      '--config-file',
      '/etc/neutron/rate.ini',
    ],
  );
  // Default: the proxy installed beside the hooks, run with this node and the services' node flags.
  const [node, ...rest] = proxyProgram(config());
  assert.equal(node, process.execPath);
  assert.deepEqual(rest.slice(0, -1), [
    '--max-semi-space-size=2',
    '--heap-growing-percent=50',
    '--v8-pool-size=1',
  ]);
  assert.match(rest.at(-1)!, /packages\/ns-metadata-proxy\/dist\/src\/cli\.js$/);
  // A script given as the command also runs with them; an executable is run as it is.
  assert.deepEqual(proxyProgram(config({ 'ns-metadata-proxy-command': '/opt/p/cli.js' })), [
    process.execPath,
    '--max-semi-space-size=2',
    '--heap-growing-percent=50',
    '--v8-pool-size=1',
    '/opt/p/cli.js',
  ]);
});

test('the socket status expects for each bind form', () => {
  assert.deepEqual(expectedSocket('169.254.169.254:80'), { address: '169.254.169.254', port: 80 });
  assert.deepEqual(expectedSocket('[fe80::a9fe:a9fe%tap0]:80'), { address: 'fe80::a9fe:a9fe', port: 80 });
  assert.deepEqual(expectedSocket('[::]:9697'), { address: '::', port: 9697 });
  assert.deepEqual(expectedSocket('0.0.0.0:9697'), { address: '0.0.0.0', port: 9697 });
});

test("haproxy's flags as neutron passes them", () => {
  assert.deepEqual(parseHaproxyArgs(['-f', '/x.conf']), {
    configFiles: ['/x.conf'],
    checkOnly: false,
    version: false,
  });
  assert.equal(parseHaproxyArgs(['-c', '-f', '/x.conf']).checkOnly, true);
  assert.equal(parseHaproxyArgs(['-f', '/x.conf', '-p', '/p']).pidFile, '/p');
  assert.equal(parseHaproxyArgs(['-vv']).version, true);
  assert.equal(parseHaproxyArgs(['-D', '-f', '/x.conf']).checkOnly, false);
  assert.throws(() => parseHaproxyArgs([]), /exactly one -f/);
  assert.throws(() => parseHaproxyArgs(['-f', '/a', '-f', '/b']), /exactly one -f/);
  assert.throws(() => parseHaproxyArgs(['-sf', '12', '-f', '/a']), /unsupported haproxy option '-sf'/);
});

test('haproxy-kill refuses anything that is not an ns-metadata-proxy', () => {
  assert.throws(() => haproxyKill('15', String(process.pid)), /not an ns-metadata-proxy; refusing/);
  assert.throws(() => haproxyKill('USR1', String(process.pid)), /unsupported signal/);
  assert.throws(() => haproxyKill('15', '1; rm -rf /'), /invalid pid/);
  assert.throws(() => haproxyKill('-TERM', '4194300'), /no process/);
});
