/*
 * Coalesced lookups (rpc_lookup_batch_max) against neutron-server's own RPC code over a real RabbitMQ:
 * N concurrent uncached lookups on one network are answered correctly (each its own instance, an absent
 * address not found, an address with two ports ambiguous) with fewer get_ports than N, the batched calls
 * carrying several addresses in `fixed_ips.ip_address` (neutron: the ports with ANY of them); with
 * rpc_lookup_batch_max = 1 (the default) the same lookups cost one call each, one address per call.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type InstanceIdentity, MetadataError } from '@nmp/common';
import { captureLogs, sleep, waitUntil } from '@nmp/testkit';
import { labPort, NET_A, NET_B, startRpcLab } from './rpc-fixture.js';

const N = 24;
const ip = (k: number) => `10.40.${Math.floor(k / 200)}.${(k % 200) + 10}`;
const vm = (k: number) => `${String(k).padStart(8, '0')}-4444-4444-8444-444444444444`;
const PORTS = [
  ...Array.from({ length: N }, (_, k) =>
    labPort(`port-${k}`, NET_A, `fa:16:3e:40:00:${k.toString(16).padStart(2, '0')}`, [ip(k)], vm(k)),
  ),
  // The address of instance 0 on another network too: never NET_A's answer.
  labPort('port-b0', NET_B, 'fa:16:3e:41:00:00', [ip(0)], vm(900)),
  // Two ports with one address on NET_A: ambiguous.
  labPort('port-d1', NET_A, 'fa:16:3e:42:00:01', ['10.40.9.9'], vm(901)),
  labPort('port-d2', NET_A, 'fa:16:3e:42:00:02', ['10.40.9.9'], vm(902)),
];

async function outcome(p: Promise<InstanceIdentity>): Promise<string> {
  try {
    return (await p).instanceId;
  } catch (err) {
    return err instanceof MetadataError ? err.code : String(err);
  }
}

test("N concurrent lookups on one network: answered right by neutron's server code with fewer get_ports than N", async (t) => {
  const lab = await startRpcLab(t, { topics: ['plugin'], ports: PORTS });
  if (!lab) return;
  // Each answer takes a while, as under load: lookups arriving meanwhile wait for one call together.
  await lab.server.setDelay(30);
  const { logger } = captureLogs();
  const addresses = [...Array.from({ length: N }, (_, k) => ip(k)), '10.40.9.99', '10.40.9.9'];
  const expected = [
    ...Array.from({ length: N }, (_, k) => vm(k)),
    'MDA_ERR_PORT_NOT_FOUND',
    'MDA_ERR_PORT_AMBIGUOUS',
  ];

  const storm = async (lines: string[]) => {
    const rpc = lab.parts(t, logger, lines);
    await waitUntil(() => rpc.broker.connected, 15_000, 'connected to RabbitMQ');
    const from = lab.server.getPorts().length;
    const answers = await Promise.all(
      addresses.map((a) => outcome(rpc.resolver.resolve({ mode: 'network', id: NET_A, ip: a }))),
    );
    await sleep(200); // the server's stdout may trail its replies
    const calls = lab.server.getPorts().slice(from);
    return { answers, calls };
  };

  const batched = await storm(['[DEFAULT]', 'rpc_lookup_batch_max = 64']);
  assert.deepEqual(batched.answers, expected);
  const asked = batched.calls.flatMap((c) => (c.filters.fixed_ips as { ip_address: string[] }).ip_address);
  assert.deepEqual([...asked].sort(), [...addresses].sort(), 'every address asked exactly once');
  assert.ok(
    batched.calls.length < addresses.length,
    `${batched.calls.length} get_ports for ${addresses.length} lookups`,
  );
  assert.ok(batched.calls.length <= 3, `natural batching: ${batched.calls.length} calls`);
  assert.ok(batched.calls.every((c) => JSON.stringify(c.filters.network_id) === JSON.stringify([NET_A])));
  assert.equal(
    JSON.stringify(Object.keys(batched.calls[1]!.filters)),
    JSON.stringify(['fixed_ips', 'network_id']),
    "neutron's key order",
  );

  const capped = await storm(['[DEFAULT]', 'rpc_lookup_batch_max = 4']);
  assert.deepEqual(capped.answers, expected);
  assert.ok(
    capped.calls.every((c) => (c.filters.fixed_ips as { ip_address: string[] }).ip_address.length <= 4),
  );
  assert.ok(capped.calls.length < addresses.length && capped.calls.length >= Math.ceil(addresses.length / 4));

  const single = await storm(['[DEFAULT]', 'rpc_lookup_batch_max = 1']);
  assert.deepEqual(single.answers, expected);
  assert.equal(single.calls.length, addresses.length, 'one get_ports per lookup');
  assert.ok(
    single.calls.every((c) => (c.filters.fixed_ips as { ip_address: string[] }).ip_address.length === 1),
  );

  // The default is 1: no coalescing unless the operator asks for it.
  const byDefault = await storm([]);
  assert.deepEqual(byDefault.answers, expected);
  assert.equal(byDefault.calls.length, addresses.length, 'by default one get_ports per lookup');
});
