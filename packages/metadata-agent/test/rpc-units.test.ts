/*
 * The RPC resolver's pure parts, without a broker: transport_url parsed as oslo.messaging parses it
 * (several hosts, per-host credentials, vhost spellings, IPv6, %-escapes) and never echoed with its
 * password; the URL's query over [oslo_messaging_rabbit]; TLS settings; the oslo envelope and reply
 * shapes; neutron's filters; and resolver = auto's choice.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '@nmp/common';
import { captureLogs } from '@nmp/testkit';
import { AGENT_COMPAT, agentSchema } from '../src/options.js';
import { chooseResolver } from '../src/resolver-factory.js';
import { retryDelayMs } from '../src/rpc/broker-connection.js';
import {
  adminContext,
  buildMessage,
  decodeEnvelope,
  decodeReply,
  encodeEnvelope,
  pythonTimestamp,
} from '../src/rpc/envelope.js';
import { addressFilters, getPortsRequest, routerFilters } from '../src/rpc/rpc-resolver.js';
import { brokerTls, effectiveRpcConfig } from '../src/rpc/settings.js';
import { reportTime } from '../src/rpc/state-reporter.js';
import { describeTransport, parseTransportUrl } from '../src/rpc/transport-url.js';

const load = (env: Record<string, string> = {}, flags: Record<string, unknown> = {}) =>
  loadConfig(agentSchema, { flags, env, compat: AGENT_COMPAT }).config;

test('transport_url: hosts, credentials, ports, vhost and query as oslo reads them', () => {
  const u = parseTransportUrl(
    'rabbit://openstack:p%40ss%3Aw%2Frd@10.0.0.1:5672,openstack:p%40ss%3Aw%2Frd@[fd00::2]:5673,10.0.0.3/nova?ssl=1',
  );
  assert.deepEqual(
    u.hosts.map((h) => [h.hostname, h.port, h.username, h.password, h.hasCredentials]),
    [
      ['10.0.0.1', 5672, 'openstack', 'p@ss:w/rd', true],
      ['fd00::2', 5673, 'openstack', 'p@ss:w/rd', true],
      ['10.0.0.3', 5672, 'guest', 'guest', false],
    ],
  );
  assert.equal(u.vhost, 'nova');
  assert.deepEqual(u.query, { ssl: '1' });
  for (const [url, vhost] of [
    ['rabbit://h', '/'],
    ['rabbit://h/', '/'],
    ['rabbit://h//', '/'],
    ['rabbit://h/%2F', '/'],
    ['rabbit://h/a%2Fb', 'a/b'],
  ] as const)
    assert.equal(parseTransportUrl(url).vhost, vhost, url);
  // A user without a password keeps its name; kombu fills the empty password with guest's.
  assert.deepEqual(
    [
      parseTransportUrl('rabbit://bob@h').hosts[0]!.username,
      parseTransportUrl('rabbit://bob@h').hosts[0]!.password,
    ],
    ['bob', 'guest'],
  );
  assert.equal(parseTransportUrl('kombu+rabbit://u:p@h:1/').hosts[0]!.port, 1);
});

test('transport_url errors never repeat the URL (it holds the password)', () => {
  for (const url of [
    'amqp://u:hunter2-secret@h:5672/',
    'rabbit://u:hunter2-secret@h:99999/',
    'rabbit://u:hunter2-secret@[fd00::1/',
    'rabbit://u:hunter2-secret@/',
    'rabbit://u:hunter2%zz-secret@h/',
    'hunter2-secret',
  ]) {
    assert.throws(
      () => parseTransportUrl(url),
      (err: unknown) =>
        err instanceof ConfigError &&
        !err.message.includes('hunter2') &&
        /^transport_url: /.test(err.message),
      url,
    );
  }
  assert.throws(() => parseTransportUrl('kafka://h:9092'), /kafka:\/\/ driver is not supported/);
});

test('describeTransport masks every password', () => {
  const u = parseTransportUrl('rabbit://op:s3cr3t@a:5672,op:s3cr3t@b:5672//?ssl=1');
  const d = describeTransport(u, true);
  assert.equal(d, 'rabbit://op:****@a:5672,op:****@b:5672/?ssl=1 (TLS)');
  assert.ok(!d.includes('s3cr3t'));
});

test("the URL's query overrides [oslo_messaging_rabbit]; unknown names warn; bad values are named", () => {
  const { logger, lines } = captureLogs();
  const cfg = load({
    NMP_TRANSPORT_URL: 'rabbit://u:pw@h/?ssl=1&heartbeat_timeout_threshold=20&frobnicate=1',
  });
  const { config } = effectiveRpcConfig(cfg, logger);
  assert.equal(config.rabbitSsl, true);
  assert.equal(config.rabbitHeartbeatTimeout, 20);
  assert.equal(lines().filter((l) => /frobnicate/.test(String(l.msg))).length, 1);
  assert.throws(
    () => effectiveRpcConfig(load({ NMP_TRANSPORT_URL: 'rabbit://u:pw@h/?ssl=maybe' })),
    /query parameter ssl: expected true or false/,
  );
});

test('TLS: off unless asked; the chain always verified; unreadable files named at start', () => {
  assert.equal(brokerTls(load({ NMP_TRANSPORT_URL: 'rabbit://h/' }) as never), undefined);
  const on = brokerTls(
    effectiveRpcConfig(load({ NMP_TRANSPORT_URL: 'rabbit://h/?ssl=true&ssl_version=TLSv1_2' })).config,
  )!;
  assert.equal(on.rejectUnauthorized, true);
  assert.equal(on.minVersion, 'TLSv1.2');
  assert.equal(on.maxVersion, 'TLSv1.2');
  // No host name check unless ssl_enforce_hostname_verification (as oslo).
  assert.equal(on.checkServerIdentity?.('h', {} as never), undefined);
  assert.throws(
    () =>
      brokerTls(
        effectiveRpcConfig(load({ NMP_TRANSPORT_URL: 'rabbit://h/?ssl=1&ssl_ca_file=/nonexistent/ca.pem' }))
          .config,
      ),
    /\[oslo_messaging_rabbit\] ssl_ca_file \/nonexistent\/ca\.pem: cannot read: ENOENT/,
  );
  assert.throws(
    () => loadConfig(agentSchema, { flags: { 'rabbit-ssl-version': 'SSLv2' }, env: {} }),
    /expected TLSv1_2/,
  );
});

test('oslo envelope: calls and casts carry what oslo sends; replies of every release are read', () => {
  const ctx = adminContext(new Date('2026-01-02T03:04:05.678Z'));
  assert.equal(ctx.timestamp, '2026-01-02 03:04:05.678000');
  assert.equal(pythonTimestamp(new Date('2026-01-02T03:04:05.000Z')), '2026-01-02 03:04:05.000000');
  assert.equal(reportTime(new Date('2026-01-02T03:04:05.678Z')), '2026-01-02T03:04:05.678000');
  const call = buildMessage(getPortsRequest({ a: 1 }), ctx, { msgId: 'm1', replyQueue: 'reply_x' });
  assert.deepEqual(
    Object.keys(call).filter((k) => !k.startsWith('_context_')),
    ['method', 'args', 'version', '_msg_id', '_reply_q', '_timeout', '_unique_id'],
  );
  assert.equal(call._timeout, null);
  assert.deepEqual(call.args, { filters: { a: 1 } });
  assert.equal(call._context_is_admin, true);
  const cast = buildMessage({ method: 'm', args: {}, version: '1.2', namespace: 'ns' }, {});
  assert.equal(cast.namespace, 'ns');
  assert.ok(!('_msg_id' in cast));
  const body = encodeEnvelope(call);
  const outer = JSON.parse(body.toString()) as Record<string, unknown>;
  assert.deepEqual(Object.keys(outer), ['oslo.version', 'oslo.message']);
  assert.equal(typeof outer['oslo.message'], 'string');
  assert.deepEqual(decodeEnvelope(body), call);
  assert.deepEqual(decodeEnvelope(Buffer.from('{"_msg_id":"a","result":1}')), { _msg_id: 'a', result: 1 });
  assert.throws(
    () => decodeEnvelope(Buffer.from('{"oslo.version":"1.0","oslo.message":"{}"}')),
    /unsupported envelope/,
  );

  assert.deepEqual(decodeReply({ _msg_id: 'a', result: [1], failure: null, ending: true }), {
    msgId: 'a',
    result: [1],
    ending: true,
  });
  assert.deepEqual(decodeReply({ _msg_id: 'a', result: [1], failure: null }), {
    msgId: 'a',
    result: [1],
    ending: false,
  });
  assert.deepEqual(decodeReply({ _msg_id: 'a', ending: true }), { msgId: 'a', result: null, ending: true });
  const failed = decodeReply({
    _msg_id: 'a',
    result: null,
    failure: JSON.stringify({
      class: 'PortNotFound',
      module: 'neutron_lib.exceptions',
      message: 'gone',
      tb: ['x'],
    }),
    ending: true,
  });
  assert.deepEqual(failed.failure, {
    className: 'PortNotFound',
    module: 'neutron_lib.exceptions',
    message: 'gone',
  });
  assert.throws(() => decodeReply({ result: 1 }), /no _msg_id/);
});

test("neutron's filters, in neutron's key order", () => {
  assert.equal(
    JSON.stringify(addressFilters({ mode: 'network', id: 'n', ip: '10.0.0.5' }, ['n'])),
    '{"fixed_ips":{"ip_address":["10.0.0.5"]},"network_id":["n"]}',
  );
  assert.equal(
    JSON.stringify(
      addressFilters({ mode: 'network', id: 'n', ip: 'fe80::1', mac: 'fa:16:3e:00:00:01' }, ['n']),
    ),
    '{"mac_address":["fa:16:3e:00:00:01"],"network_id":["n"]}',
  );
  assert.equal(
    JSON.stringify(routerFilters('r')),
    '{"device_id":["r"],"device_owner":["network:router_interface","network:ha_router_replicated_interface","network:router_interface_distributed"]}',
  );
  assert.deepEqual(getPortsRequest({}), { method: 'get_ports', args: { filters: {} }, version: '1.0' });
});

test('resolver = auto: rpc with transport_url, neutron with [neutron] auth_url, else a ConfigError', () => {
  assert.deepEqual(chooseResolver(load({ NMP_TRANSPORT_URL: 'rabbit://h/' })), {
    kind: 'rpc',
    reason: 'transport_url is set',
  });
  assert.equal(
    chooseResolver(load({ NMP_TRANSPORT_URL: 'rabbit://h/' }, { 'neutron-auth-url': 'http://k:5000/v3' }))
      .kind,
    'rpc',
  );
  assert.equal(chooseResolver(load({}, { 'neutron-auth-url': 'http://k:5000/v3' })).kind, 'neutron');
  // An OVN chassis' neutron.conf may hold a transport_url too: the Southbound is what it looks up in.
  assert.deepEqual(
    chooseResolver(load({ NMP_TRANSPORT_URL: 'rabbit://h/' }, { 'ovn-sb-connection': 'tcp:10.0.0.1:6642' })),
    { kind: 'ovn', reason: '[ovn] ovn_sb_connection is set' },
  );
  // An explicit choice always wins.
  assert.equal(
    chooseResolver(load({ NMP_TRANSPORT_URL: 'rabbit://h/' }, { resolver: 'neutron' })).kind,
    'neutron',
  );
  assert.equal(
    chooseResolver(load({ NMP_TRANSPORT_URL: 'rabbit://h/' }, { resolver: 'inventory' })).kind,
    'inventory',
  );
  assert.throws(
    () => chooseResolver(load()),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /set transport_url .*ovn_sb_connection.*\[neutron\] auth_url.*resolver = inventory/,
      );
      assert.ok(!err.message.includes('\n'));
      return true;
    },
  );
});

test('transport_url is a secret: no flag, masked when printed, taken from the environment or a file', () => {
  assert.equal(agentSchema.transportUrl.secret, true);
  assert.equal(agentSchema.transportUrl.flag, false);
});

test("reconnection back-off: oslo's defaults give 1, 3, 5 ... 29, then 30 s between rounds", () => {
  const oslo = { retryIntervalMs: 1000, retryBackoffMs: 2000, retryMaxMs: 30_000 };
  assert.deepEqual(
    Array.from({ length: 17 }, (_, r) => retryDelayMs(r, oslo) / 1000),
    [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 30, 30],
  );
  // A maximum below the interval does not shorten the first wait.
  assert.equal(retryDelayMs(0, { retryIntervalMs: 5000, retryBackoffMs: 0, retryMaxMs: 1000 }), 5000);
});
