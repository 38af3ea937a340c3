/*
 * The OVN resolver against a real Southbound populated as neutron populates it (Datapath_Binding named
 * neutron-<network>, Port_Binding with neutron:* external_ids, the localport metadata port, two chassis):
 * IPv4 and link-local IPv6 (by MAC) lookups, no binding, two bindings, the same address on another network,
 * bindings moving between chassis and a live migration's additional chassis, in both lookup scopes; lookups
 * that cost no database round trip; a Southbound outage served from the last copy while /readyz says why;
 * and the resolver selection rule.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { ConfigError, type LookupQuery, MetadataError, parseForwardedFor, silentLogger } from '@nmp/common';
import { freeLowPort, OVN_SB_SCHEMA, requireTools, runCommand } from '@nmp/testkit';
import { OvnMetadataService } from '../src/ovn/ovn-service.js';
import { chooseResolver } from '../src/resolver-factory.js';
import { withoutPort } from './helpers.js';
import {
  agentConfig,
  DB,
  NET1,
  NET2,
  PROJECT,
  populateCloud,
  type Sb,
  sbOps,
  startSouthbound,
  until,
} from './ovn-helpers.js';

const q = (network: string, source: string): LookupQuery => {
  const a = parseForwardedFor(source)!;
  return a.mac
    ? { mode: 'network', id: network, ip: a.ip, mac: a.mac }
    : { mode: 'network', id: network, ip: a.ip };
};

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof MetadataError ? err.code : String(err);
  }
}

/** The cloud of the tests: ports on NET1 and NET2, bound to hv1 (us) and hv2. */
async function populatePorts(sb: Sb): Promise<void> {
  const hv1 = await sb.chassis('hv1');
  const hv2 = await sb.chassis('hv2');
  const dp1 = await sb.datapath(NET1);
  const dp2 = await sb.datapath(NET2);
  await sb.transact([
    sbOps.port({
      id: 'vm-a',
      datapath: dp1,
      tunnelKey: 1,
      mac: 'fa:16:3e:00:00:05',
      ips: ['10.0.0.5', '2001:db8::5'],
      deviceId: 'inst-a',
      projectId: PROJECT,
      networkId: NET1,
      chassis: hv1,
    }),
    sbOps.port({
      id: 'vm-b',
      datapath: dp1,
      tunnelKey: 2,
      mac: 'fa:16:3e:00:00:06',
      ips: ['10.0.0.6'],
      deviceId: 'inst-b',
      projectId: PROJECT,
      networkId: NET1,
      chassis: hv2,
    }),
    sbOps.port({
      id: 'vm-unbound',
      datapath: dp1,
      tunnelKey: 3,
      mac: 'fa:16:3e:00:00:07',
      ips: ['10.0.0.7'],
      deviceId: 'inst-c',
      projectId: PROJECT,
      networkId: NET1,
    }),
    sbOps.port({
      id: 'dup-1',
      datapath: dp1,
      tunnelKey: 4,
      mac: 'fa:16:3e:00:00:08',
      ips: ['10.0.0.8'],
      deviceId: 'inst-d1',
      projectId: PROJECT,
      networkId: NET1,
      chassis: hv1,
    }),
    sbOps.port({
      id: 'dup-2',
      datapath: dp1,
      tunnelKey: 5,
      mac: 'fa:16:3e:00:00:09',
      ips: ['10.0.0.8'],
      deviceId: 'inst-d2',
      projectId: PROJECT,
      networkId: NET1,
      chassis: hv1,
    }),
    sbOps.port({
      id: 'meta-1',
      datapath: dp1,
      tunnelKey: 6,
      type: 'localport',
      mac: 'fa:16:3e:00:00:02',
      ips: ['10.0.0.2'],
      deviceId: `ovnmeta-${NET1}`,
      networkId: NET1,
    }),
    sbOps.port({
      id: 'no-device',
      datapath: dp1,
      tunnelKey: 7,
      mac: 'fa:16:3e:00:00:0a',
      ips: ['10.0.0.10'],
      networkId: NET1,
      chassis: hv1,
    }),
    // The same address as vm-a, on another network.
    sbOps.port({
      id: 'vm-z',
      datapath: dp2,
      tunnelKey: 1,
      mac: 'fa:16:3e:00:01:05',
      ips: ['10.0.0.5'],
      deviceId: 'inst-z',
      projectId: 'other',
      networkId: NET2,
      chassis: hv1,
    }),
  ]);
}

async function service(t: TestContext, sb: Sb, scope: 'chassis' | 'all', remote = sb.server.unixRemote) {
  const svc = new OvnMetadataService({
    config: agentConfig({
      'ovn-sb-connection': remote,
      'ovn-chassis-name': 'hv1',
      'ovn-lookup-scope': scope,
    }),
    logger: silentLogger(),
    liveness: false,
    backoffMinMs: 50,
    backoffMaxMs: 200,
  });
  t.after(() => svc.close());
  await svc.start();
  await until('the index', () => svc.southbound!.connected && svc.health() === undefined);
  await svc.southbound!.settled();
  return svc;
}

test('lookups from the index: IPv4, link-local IPv6 by MAC, none, several, another network', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovsdb-client'], [OVN_SB_SCHEMA])) return;
  const sb = await startSouthbound(t);
  await populateCloud(sb);
  await populatePorts(sb);
  const svc = await service(t, sb, 'chassis');
  const r = svc.resolver;
  await until('the ports', () => svc.southbound!.index!.size >= 5);

  assert.deepEqual(withoutPort(await r.resolve(q(NET1, '10.0.0.5'))), {
    instanceId: 'inst-a',
    projectId: PROJECT,
    cached: false,
  });
  assert.equal((await r.resolve(q(NET1, '2001:db8::5'))).instanceId, 'inst-a');
  // fe80::f816:3eff:fe00:5 is the EUI-64 address of fa:16:3e:00:00:05.
  assert.equal((await r.resolve(q(NET1, 'fe80::f816:3eff:fe00:5'))).instanceId, 'inst-a');
  assert.equal((await r.resolve(q(NET2, '10.0.0.5'))).instanceId, 'inst-z', 'the network decides');
  assert.equal(await code(r.resolve(q(NET1, '10.0.0.99'))), 'MDA_ERR_PORT_NOT_FOUND');
  assert.equal(await code(r.resolve(q(NET1, '10.0.0.7'))), 'MDA_ERR_PORT_NOT_FOUND', 'unbound');
  assert.equal(
    await code(r.resolve(q(NET1, '10.0.0.6'))),
    'MDA_ERR_PORT_NOT_FOUND',
    'bound to another chassis',
  );
  assert.equal(await code(r.resolve(q(NET1, '10.0.0.2'))), 'MDA_ERR_PORT_NOT_FOUND', 'the metadata port');
  assert.equal(await code(r.resolve(q(NET1, '10.0.0.10'))), 'MDA_ERR_PORT_NOT_FOUND', 'no device id');
  const ambiguous = await r.resolve(q(NET1, '10.0.0.8')).catch((e: MetadataError) => e);
  assert.ok(ambiguous instanceof MetadataError);
  assert.equal(ambiguous.code, 'MDA_ERR_PORT_AMBIGUOUS');
  assert.deepEqual([...(ambiguous.details.ports as string[])].sort(), ['dup-1', 'dup-2']);
  assert.equal(ambiguous.message, `Instance was not found on network ${NET1}.`);
  assert.equal(await code(r.resolve({ mode: 'router', id: NET1, ip: '10.0.0.5' })), 'MDA_ERR_PORT_NOT_FOUND');
  assert.equal(
    await code(r.resolve(q('00000000-0000-0000-0000-000000000000', '0.0.0.0'))),
    'MDA_ERR_PORT_NOT_FOUND',
  );

  // Only this chassis' Port_Bindings were sent and indexed (vm-a, dup-1, dup-2, no-device, vm-z).
  assert.equal(svc.southbound!.index!.size, 5);
  assert.equal(svc.southbound!.replica.table('Port_Binding').size, 5);

  // A lookup touches no database.
  const before = svc.southbound!.client.stats.requests;
  for (let i = 0; i < 1000; i++) await r.resolve(q(NET1, '10.0.0.5'));
  assert.equal(svc.southbound!.client.stats.requests, before);
});

test('bindings moving between chassis, and a live migration to this one', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovsdb-client'], [OVN_SB_SCHEMA])) return;
  const sb = await startSouthbound(t);
  await populateCloud(sb);
  await populatePorts(sb);
  const mine = await service(t, sb, 'chassis');
  const all = await service(t, sb, 'all');
  const hv1 = await sb.chassis('hv1');
  const hv2 = await sb.chassis('hv2');
  const found = async (svc: OvnMetadataService, ip: string) => {
    try {
      return (await svc.resolver.resolve(q(NET1, ip))).instanceId;
    } catch (err) {
      return (err as MetadataError).code;
    }
  };
  const eventually = async (svc: OvnMetadataService, ip: string, expected: string) =>
    until(`${ip} -> ${expected}`, async () => (await found(svc, ip)) === expected);

  assert.equal(await found(all, '10.0.0.6'), 'inst-b', "scope 'all' answers for any chassis, as neutron");
  assert.equal(await found(mine, '10.0.0.6'), 'MDA_ERR_PORT_NOT_FOUND');

  // vm-b moves here, vm-a leaves for hv2.
  await sb.transact([sbOps.bind('vm-b', hv1), sbOps.bind('vm-a', hv2)]);
  await eventually(mine, '10.0.0.6', 'inst-b');
  await eventually(mine, '10.0.0.5', 'MDA_ERR_PORT_NOT_FOUND');
  await eventually(all, '10.0.0.5', 'inst-a');
  // Unbound (the VM is gone or being migrated): nobody answers.
  await sb.transact([sbOps.bind('vm-a', undefined)]);
  await eventually(all, '10.0.0.5', 'MDA_ERR_PORT_NOT_FOUND');
  // A live migration towards hv1: bound to hv2, hv1 an additional chassis. Ours answers already.
  await sb.transact([
    {
      op: 'update',
      table: 'Port_Binding',
      where: [['logical_port', '==', 'vm-a']],
      row: { chassis: hv2, additional_chassis: ['set', [hv1]] },
    },
  ]);
  await eventually(mine, '10.0.0.5', 'inst-a');
  // The migration ends on hv1.
  await sb.transact([
    {
      op: 'update',
      table: 'Port_Binding',
      where: [['logical_port', '==', 'vm-a']],
      row: { chassis: hv1, additional_chassis: ['set', []] },
    },
  ]);
  await eventually(mine, '10.0.0.5', 'inst-a');
  // The instance's id changes with the port (a port reused by another instance).
  await sb.transact([
    {
      op: 'mutate',
      table: 'Port_Binding',
      where: [['logical_port', '==', 'vm-a']],
      mutations: [
        ['external_ids', 'delete', ['set', ['neutron:device_id']]],
        ['external_ids', 'insert', ['map', [['neutron:device_id', 'inst-a2']]]],
      ],
    },
  ]);
  await eventually(mine, '10.0.0.5', 'inst-a2');
  // The port is deleted.
  await sb.transact([sbOps.deletePort('vm-a')]);
  await eventually(mine, '10.0.0.5', 'MDA_ERR_PORT_NOT_FOUND');
  // Our chassis is re-created by ovn-controller (new uuid): the condition and the index follow.
  const before = mine.southbound!.chassisUuid;
  await sb.transact([
    { op: 'delete', table: 'Chassis', where: [['name', '==', 'hv1']] },
    ...sbOps.chassis('hv1').slice(0, 2),
  ]);
  const newHv1 = await sb.chassis('hv1');
  assert.notEqual(newHv1[1], before);
  await until('the new chassis uuid', () => mine.southbound!.chassisUuid === newHv1[1]);
  await sb.transact([sbOps.bind('vm-b', newHv1)]);
  await eventually(mine, '10.0.0.6', 'inst-b');
});

test('a Southbound outage: the last copy answers, /readyz says why, and the resync catches up', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovsdb-client'], [OVN_SB_SCHEMA])) return;
  const sb = await startSouthbound(t, await freeLowPort());
  await populateCloud(sb);
  await populatePorts(sb);
  const svc = await service(t, sb, 'chassis', sb.server.tcpRemote);
  await until(
    'the index',
    async () => (await code(svc.resolver.resolve(q(NET1, '10.0.0.5')))) === 'resolved',
  );

  await sb.server.stopProcess();
  await until('the outage to be noticed', () => svc.health() !== undefined);
  assert.match(svc.health()!, /disconnected \(answering from the last copy\)/);
  const stale = await svc.resolver.resolve(q(NET1, '10.0.0.5'));
  assert.deepEqual(withoutPort(stale), { instanceId: 'inst-a', projectId: PROJECT, cached: true });
  const missing = await svc.resolver.resolve(q(NET1, '10.0.0.99')).catch((e: MetadataError) => e);
  assert.equal(
    (missing as MetadataError).details.cached,
    true,
    'a stale "not found" does not make /readyz true',
  );

  // While it was down, vm-a was deleted and a new port bound here.
  await runCommand(undefined, 'ovsdb-tool', [
    'transact',
    sb.server.dbFile,
    JSON.stringify([DB, sbOps.deletePort('vm-a')]),
  ]);
  await sb.server.startProcess();
  await until('the resync', () => svc.health() === undefined, 15_000);
  await until(
    'vm-a gone',
    async () => (await code(svc.resolver.resolve(q(NET1, '10.0.0.5')))) === 'MDA_ERR_PORT_NOT_FOUND',
  );
  assert.equal((await svc.resolver.resolve(q(NET2, '10.0.0.5'))).cached, false);
});

test('before the first load: 503, and the reason', async (t) => {
  const svc = new OvnMetadataService({
    config: agentConfig({ 'ovn-sb-connection': 'unix:/nonexistent/sb.sock', 'ovn-chassis-name': 'hv1' }),
    logger: silentLogger(),
    liveness: false,
    backoffMinMs: 50,
    backoffMaxMs: 100,
  });
  t.after(() => svc.close());
  await svc.start();
  assert.equal(await code(svc.resolver.resolve(q(NET1, '10.0.0.5'))), 'MDA_ERR_RESOLVER_UNAVAILABLE');
  await until('a failed attempt', () => /not connected yet: unix:\/nonexistent/.test(svc.health() ?? ''));
});

test('resolver = auto: ovn when [ovn] ovn_sb_connection is set, then neutron, else a clear error', () => {
  assert.equal(chooseResolver(agentConfig({ 'ovn-sb-connection': 'tcp:10.0.0.1:6642' })).kind, 'ovn');
  assert.equal(
    chooseResolver(
      agentConfig({ 'ovn-sb-connection': 'tcp:10.0.0.1:6642', 'neutron-auth-url': 'http://k:5000/v3' }),
    ).kind,
    'ovn',
  );
  assert.equal(chooseResolver(agentConfig({ 'neutron-auth-url': 'http://k:5000/v3' })).kind, 'neutron');
  assert.equal(
    chooseResolver(agentConfig({ resolver: 'neutron', 'ovn-sb-connection': 'tcp:10.0.0.1:6642' })).kind,
    'neutron',
  );
  assert.equal(chooseResolver(agentConfig({ resolver: 'inventory' })).kind, 'inventory');
  assert.throws(
    () => chooseResolver(agentConfig({})).kind,
    (e: unknown) => e instanceof ConfigError && /ovn_sb_connection/.test(e.message),
  );
  assert.throws(() => agentConfig({ 'ovn-sb-connection': 'ptcp:6642' }), ConfigError);
});
