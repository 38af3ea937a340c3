/*
 * resolver = rpc against neutron-server's own RPC code (python3-neutron's MetadataRpcCallback behind an
 * oslo.messaging server) over a real RabbitMQ: the filters neutron receives are exactly those of
 * neutron's own agent (network mode, link-local IPv6 by MAC, router mode's two calls; same keys, values
 * and key order), checked both against the spec and against neutron's MetadataProxyHandler making the
 * same lookups; the context neutron deserialises is an admin context; answers go through the shared
 * match rule (not found, several, a port on another network); a server exception is a 503 with its class.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetadataError } from '@nmp/common';
import { captureLogs, sleep, waitUntil } from '@nmp/testkit';
import { withoutPort } from './helpers.js';
import { NET_A, NET_B, PROJECT, ROUTER, type RpcLab, startRpcLab, VM_A, VM_B } from './rpc-fixture.js';

const OWNERS = [
  'network:router_interface',
  'network:ha_router_replicated_interface',
  'network:router_interface_distributed',
];

/**
 * The filters of the server's get_ports events from index `from` on, as JSON text (key order kept), once
 * `expected` have arrived (the server's stdout may trail its RPC reply) and a moment passed for extra ones.
 */
async function filtersSince(lab: RpcLab, from: number, expected: number): Promise<string[]> {
  await waitUntil(() => lab.server.getPorts().length >= from + expected, 5000, `${expected} get_ports calls`);
  await sleep(100);
  return lab.server
    .getPorts()
    .slice(from)
    .map((e) => JSON.stringify(e.filters));
}

test('lookups over RPC send exactly neutron agent filters and get the instance', async (t) => {
  const lab = await startRpcLab(t);
  if (!lab) return;
  const { logger } = captureLogs();
  const rpc = lab.parts(t, logger);
  const resolver = rpc.resolver;

  await t.test('network mode, IPv4: fixed_ips then network_id', async () => {
    const n = lab.server.getPorts().length;
    const id = await resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip });
    assert.deepEqual(withoutPort(id), { instanceId: VM_A.uuid, projectId: PROJECT, cached: false });
    assert.deepEqual(await filtersSince(lab, n, 1), [
      JSON.stringify({ fixed_ips: { ip_address: [VM_A.ip] }, network_id: [NET_A] }),
    ]);
  });

  await t.test('network mode, link-local IPv6: by the MAC, no fixed_ips', async () => {
    const n = lab.server.getPorts().length;
    const id = await resolver.resolve({
      mode: 'network',
      id: NET_A,
      ip: 'fe80::f816:3eff:fe20:5',
      mac: VM_A.mac,
    });
    assert.equal(id.instanceId, VM_A.uuid);
    assert.deepEqual(await filtersSince(lab, n, 1), [
      JSON.stringify({ mac_address: [VM_A.mac], network_id: [NET_A] }),
    ]);
  });

  await t.test("router mode: the router's interfaces, then the address on their networks", async () => {
    const n = lab.server.getPorts().length;
    const id = await resolver.resolve({ mode: 'router', id: ROUTER, ip: VM_B.ip });
    assert.equal(id.instanceId, VM_B.uuid);
    assert.deepEqual(await filtersSince(lab, n, 2), [
      JSON.stringify({ device_id: [ROUTER], device_owner: OWNERS }),
      JSON.stringify({ fixed_ips: { ip_address: [VM_B.ip] }, network_id: [NET_A, NET_B] }),
    ]);
    // The router's networks are remembered: the next lookup behind it costs one call. (VM_A's address is
    // on both of the router's networks: two instances, not found.)
    const m = lab.server.getPorts().length;
    await assert.rejects(resolver.resolve({ mode: 'router', id: ROUTER, ip: VM_A.ip }), {
      code: 'MDA_ERR_PORT_AMBIGUOUS',
    });
    assert.deepEqual(await filtersSince(lab, m, 1), [
      JSON.stringify({ fixed_ips: { ip_address: [VM_A.ip] }, network_id: [NET_A, NET_B] }),
    ]);
    assert.equal(rpc.resolver.stats.routerCacheHits, 1);
  });

  await t.test("neutron's own MetadataProxyHandler asks the very same questions", async () => {
    const cases = [
      {
        headers: { 'X-Forwarded-For': VM_A.ip, 'X-Neutron-Network-ID': NET_A },
        ours: { mode: 'network', id: NET_A, ip: VM_A.ip },
      },
      {
        headers: { 'X-Forwarded-For': 'fe80::f816:3eff:fe20:5', 'X-Neutron-Network-ID': NET_A },
        ours: { mode: 'network', id: NET_A, ip: 'fe80::f816:3eff:fe20:5', mac: VM_A.mac },
      },
      {
        headers: { 'X-Forwarded-For': VM_B.ip, 'X-Neutron-Router-ID': ROUTER },
        ours: { mode: 'router', id: ROUTER, ip: VM_B.ip },
      },
    ] as const;
    for (const c of cases) {
      const n = lab.server.getPorts().length;
      const r = await lab.server.command({ cmd: 'neutron_lookup', headers: c.headers });
      const calls = c.ours.mode === 'router' ? 2 : 1;
      const theirs = await filtersSince(lab, n, calls);
      const m = lab.server.getPorts().length;
      const ours = await resolver.resolve(c.ours, { noCache: true });
      const mine = await filtersSince(lab, m, calls);
      // Router mode: neutron (no cache configured) asks for the router again; so do we with noCache.
      assert.deepEqual(mine, theirs, `filters for ${JSON.stringify(c.headers)}`);
      assert.deepEqual(r.result, [ours.instanceId, ours.projectId]);
    }
  });

  await t.test('neutron-server deserialises an admin context from what we send', () => {
    const ours = lab.server.getPorts().at(-1)!.context;
    assert.equal(ours.is_admin, true);
    assert.equal(ours.project_id, null);
    assert.equal(ours.user_id, null);
    assert.match(String(ours.request_id), /^req-[0-9a-f-]{36}$/);
    assert.deepEqual([...(ours.roles as string[])].sort(), ['admin', 'member', 'reader']);
  });

  await t.test('the match rule: nothing, a DHCP port, another network, several ports', async () => {
    await assert.rejects(resolver.resolve({ mode: 'network', id: NET_A, ip: '10.20.0.99' }), {
      code: 'MDA_ERR_PORT_NOT_FOUND',
    });
    // Matched, but not an instance: its device_id goes to Nova, which answers 404 (as neutron does).
    const dhcp = await resolver.resolve({ mode: 'network', id: NET_A, ip: '10.20.0.2' });
    assert.match(dhcp.instanceId, /^dhcp/);
    // VM_A's address on NET_B belongs to another instance: only it may be found there.
    assert.equal(
      (await resolver.resolve({ mode: 'network', id: NET_B, ip: VM_A.ip })).instanceId,
      '33333333-cccc-4ccc-8ccc-333333333333',
    );
  });

  await t.test('a server that ignores the filters cannot hand out another instance', async () => {
    // It answers every port it has: VM_A's address on NET_B (another instance), router and DHCP ports...
    await lab.server.command({ cmd: 'ignore_filters', on: true });
    try {
      const id = await resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip }, { noCache: true });
      assert.equal(id.instanceId, VM_A.uuid);
      await assert.rejects(
        resolver.resolve({ mode: 'network', id: NET_A, ip: '10.20.0.51' }, { noCache: true }),
        {
          code: 'MDA_ERR_PORT_NOT_FOUND',
        },
      );
    } finally {
      await lab.server.command({ cmd: 'ignore_filters', on: false });
    }
  });

  await t.test("neutron-server's exception is a 503 naming its class", async () => {
    await lab.server.command({ cmd: 'fail', message: 'database is gone' });
    try {
      const err = await resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip }).then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof MetadataError);
      assert.equal(err.code, 'MDA_ERR_RPC_REMOTE_ERROR');
      assert.equal(err.status, 503);
      assert.equal(err.details.remoteClass, 'RuntimeError');
      assert.match(String(err.details.remoteMessage), /database is gone/);
    } finally {
      await lab.server.command({ cmd: 'fail', message: '' });
    }
    assert.equal((await resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip })).instanceId, VM_A.uuid);
  });
});
