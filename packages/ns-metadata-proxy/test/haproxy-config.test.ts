/*
 * neutron's generated haproxy configuration (reference §2.2, §2.5, §15) read into the proxy's settings: the
 * fixtures are the DHCP (network), L3 (router) and OVN metadata agent shapes, with and without rate
 * limiting, in both the bracketed and the pre-2026 unbracketed form of the link-local bind line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  HaproxyConfigError,
  NEUTRON_HAPROXY_TIMEOUTS,
  parseHaproxyConfig,
  parseHaproxyTime,
  readHaproxyConfig,
} from '../src/haproxy-config.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));
const NET = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
const ROUTER = '5b3f6e2d-1a4c-4e8f-9b0a-7c6d5e4f3a21';
const OVN_NET = '7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

test('DHCP network, IPv4 only', async () => {
  const c = await readHaproxyConfig(fixture('dhcp-network-v4.conf'));
  assert.deepEqual(c.binds, [{ host: '169.254.169.254', port: 80 }]);
  assert.equal(c.mode, 'network');
  assert.equal(c.id, NET);
  assert.equal(c.socketPath, '/var/lib/neutron/metadata_proxy');
  assert.equal(c.pidFile, `/var/lib/neutron/external/pids/${NET}.pid.haproxy`);
  assert.equal(c.user, 'neutron');
  assert.equal(c.group, 'neutron');
  assert.equal(c.logTag, `haproxy-metadata-proxy-${NET}`);
  assert.equal(c.logLevel, 'info');
  assert.equal(c.maxConn, 1024);
  assert.deepEqual(c.timeouts, {
    httpRequest: 30_000,
    connect: 30_000,
    client: 32_000,
    server: 32_000,
    keepAlive: 30_000,
  });
  assert.equal(c.rateLimit, undefined);
  assert.deepEqual(c.deletedHeaders, ['X-Neutron-Router-ID']);
});

test('DHCP network, dual-stack with the bracketed link-local bind (master)', async () => {
  const c = await readHaproxyConfig(fixture('dhcp-network-dualstack.conf'));
  assert.deepEqual(c.binds, [
    { host: '169.254.169.254', port: 80 },
    { host: 'fe80::a9fe:a9fe', port: 80, interface: 'tap3f1c2b7a-9e' },
  ]);
  assert.equal(c.user, '65534');
  assert.equal(c.logLevel, 'debug');
});

test('DHCP network, unbracketed link-local bind (before July 2026), rate limited over IPv6, tuned timeouts', async () => {
  const c = await readHaproxyConfig(fixture('dhcp-network-dualstack-ratelimit-legacy.conf'));
  assert.deepEqual(c.binds[1], { host: 'fe80::a9fe:a9fe', port: 80, interface: 'tap0b7e4d1a-2f' });
  assert.equal(c.id, '0b7e4d1a-2f3c-4a5b-8c9d-0e1f2a3b4c5d');
  assert.deepEqual(c.rateLimit, {
    ipVersion: 6,
    baseWindow: 10,
    baseLimit: 10,
    burstWindow: 60,
    burstLimit: 30,
  });
  assert.deepEqual(c.timeouts, {
    httpRequest: 20_000,
    connect: 5_000,
    client: 40_000,
    server: 45_000,
    keepAlive: 10_000,
  });
});

test('L3 router, dual-stack :::9697', async () => {
  const c = await readHaproxyConfig(fixture('l3-router-dualstack.conf'));
  assert.deepEqual(c.binds, [{ host: '::', port: 9697 }]);
  assert.equal(c.mode, 'router');
  assert.equal(c.id, ROUTER);
  assert.deepEqual(c.deletedHeaders, ['X-Neutron-Network-ID']);
});

test('L3 router, IPv4 0.0.0.0:9697 with rate limiting (neutron defaults)', async () => {
  const c = await readHaproxyConfig(fixture('l3-router-v4-ratelimit.conf'));
  assert.deepEqual(c.binds, [{ host: '0.0.0.0', port: 9697 }]);
  assert.deepEqual(c.rateLimit, {
    ipVersion: 4,
    baseWindow: 10,
    baseLimit: 10,
    burstWindow: 10,
    burstLimit: 10,
  });
});

test('OVN metadata agent: add-header X-OVN-Network-ID is the ovn mode', async () => {
  const c = await readHaproxyConfig(fixture('ovn-network-v4.conf'));
  assert.equal(c.mode, 'ovn');
  assert.equal(c.id, OVN_NET);
  assert.deepEqual(c.binds, [{ host: '169.254.169.254', port: 80 }]);
  assert.equal(c.socketPath, '/var/lib/neutron/metadata_proxy');
  assert.equal(c.pidFile, `/var/lib/neutron/external/pids/${OVN_NET}.pid.haproxy`);
  assert.equal(c.user, 'neutron');
  assert.deepEqual(c.timeouts, NEUTRON_HAPROXY_TIMEOUTS);
  assert.deepEqual(c.deletedHeaders, []);
  const v6 = await readHaproxyConfig(fixture('ovn-network-dualstack.conf'));
  assert.deepEqual(v6.binds, [
    { host: '169.254.169.254', port: 80 },
    { host: 'fe80::a9fe:a9fe', port: 80, interface: 'tap7a1b2c3d-41' },
  ]);
  assert.equal(v6.mode, 'ovn');
});

test('OVN router header (never written by the OVN agent) is refused with a reason', async () => {
  await assert.rejects(
    readHaproxyConfig(fixture('ovn-router.conf')),
    (e: unknown) =>
      e instanceof HaproxyConfigError && /:28: X-OVN-Router-ID is not supported/.test(e.message),
  );
});

const minimal = (listen: string, extra = '') =>
  `global\n    user nobody\n${extra}\nlisten listener\n${listen}\n`;
const OK_LISTEN = `    bind 169.254.169.254:80\n    server metadata /run/m.sock\n    http-request set-header X-Neutron-Network-ID ${NET}`;

test('bind forms: empty host, *, ipv4@, zone in brackets, ports', () => {
  const binds = (b: string) =>
    parseHaproxyConfig(
      minimal(`    bind ${b}\n    server metadata /s\n    http-request set-header X-Neutron-Router-ID r1`),
    ).binds[0];
  assert.deepEqual(binds(':80'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(binds('*:9697'), { host: '0.0.0.0', port: 9697 });
  assert.deepEqual(binds('ipv4@10.0.0.1:81'), { host: '10.0.0.1', port: 81 });
  assert.deepEqual(binds('[fe80::a9fe:a9fe%tap1]:80'), {
    host: 'fe80::a9fe:a9fe',
    port: 80,
    interface: 'tap1',
  });
  assert.deepEqual(binds('[::]:9697'), { host: '::', port: 9697 });
  assert.deepEqual(binds('fe80::a9fe:a9fe:80 interface tapX accept-proxy'), {
    host: 'fe80::a9fe:a9fe',
    port: 80,
    interface: 'tapX',
  });
});

test('defaults: neutron timeouts when absent, unknown directives ignored, unix@ prefix, comments', () => {
  const c = parseHaproxyConfig(
    `# generated\nglobal\n    stats socket /tmp/x\n    tune.bufsize 16384\ndefaults\n    balance roundrobin\n` +
      `    timeout tunnel 1h\n    timeout client 1m # comment\nlisten listener\n    bind 169.254.169.254:80\n` +
      `    timeout server 1500ms\n    server metadata unix@/var/run/m.sock check\n    option httpchk\n` +
      `    http-request set-header X-Neutron-Router-ID ${ROUTER}\n`,
  );
  assert.equal(c.socketPath, '/var/run/m.sock');
  assert.deepEqual(c.timeouts, { ...NEUTRON_HAPROXY_TIMEOUTS, client: 60_000, server: 1_500 });
  assert.equal(c.mode, 'router');
  assert.equal(c.user, undefined);
});

test('parseHaproxyTime units', () => {
  assert.equal(parseHaproxyTime('30s'), 30_000);
  assert.equal(parseHaproxyTime('250'), 250);
  assert.equal(parseHaproxyTime('2m'), 120_000);
  assert.equal(parseHaproxyTime('1h'), 3_600_000);
  assert.equal(parseHaproxyTime('ten'), undefined);
});

test('errors name the file and line', () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(
      () => parseHaproxyConfig(text, '/etc/x.conf'),
      (e: unknown) => e instanceof HaproxyConfigError && re.test(e.message),
    );
  bad(
    minimal(OK_LISTEN.replace('169.254.169.254:80', '169.254.169.254')),
    /^\/etc\/x\.conf:5: bind .*ADDRESS:PORT/,
  );
  bad(minimal(OK_LISTEN.replace(':80', ':0')), /:5: .*port must be/);
  bad(minimal(OK_LISTEN.replace('169.254.169.254:80', 'metadata.example:80')), /:5: .*not an IP address/);
  bad(
    minimal(OK_LISTEN.replace('169.254.169.254:80', '[fe80::a9fe:a9fe]:80')),
    /:5: .*needs 'interface <dev>'/,
  );
  bad(minimal(OK_LISTEN.replace('/run/m.sock', '127.0.0.1:8775')), /:6: .*not a UNIX socket path/);
  bad(minimal(OK_LISTEN.replace(/.*set-header.*/, '')), /:4: no 'http-request set-header/);
  bad(
    minimal(`${OK_LISTEN}\n    http-request set-header X-Neutron-Router-ID r1`),
    /:8: a second identity header .*line 7/,
  );
  bad(
    minimal(`${OK_LISTEN}\n    http-request add-header X-OVN-Network-ID ${NET}`),
    /:8: a second identity header .*line 7/,
  );
  bad(minimal(OK_LISTEN.replace(/.*bind.*/, '')), /:4: .*no 'bind'/);
  bad(minimal(OK_LISTEN.replace(/.*server.*/, '')), /:4: .*no 'server/);
  bad('global\n  user x\n', /^\/etc\/x\.conf: no 'listen' section/);
  bad('  user x\n', /:1: 'user' outside any section/);
  bad(minimal(OK_LISTEN, 'defaults\n    timeout client soon'), /:4: timeout client 'soon'/);
  bad(
    minimal(
      `${OK_LISTEN}\n    http-request deny deny_status 429 if { src_http_req_rate(nope) gt 3 }\n` +
        '    http-request deny deny_status 429 if { src_http_req_rate(nope) gt 3 }',
    ),
    /:8: rate-limit rule refers to table 'nope'/,
  );
  bad(
    `backend a\n    stick-table type string size 1k store http_req_rate(10s)\n${minimal(OK_LISTEN)}`,
    /:2: stick-table type 'string'/,
  );
});

test('file that cannot be read', async () => {
  await assert.rejects(
    readHaproxyConfig('/nonexistent/x.conf'),
    /\/nonexistent\/x\.conf: cannot read: ENOENT/,
  );
});
