/*
 * Coalescing of uncached RPC port lookups (rpc_lookup_batch_max), without a broker: the RpcResolver (and
 * the CachingResolver in front of it) over a fake RPC client that answers get_ports from a port list with
 * neutron's list semantics (any of the addresses, any of the networks) when the test releases a call.
 * What is checked: a lone lookup goes out at once in today's shape; lookups for the network arriving while
 * a call is in flight go out together when it returns; another network is not held back; the batch max;
 * each waiter gets its own port, not-found, ambiguity, the batch's failure, its own deadline; router mode;
 * batch max 1 = one address per call; the cache filled per address; the metric.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type InstanceIdentity,
  type LookupQuery,
  loadConfig,
  MetadataError,
  type NeutronPort,
  Registry,
  silentLogger,
} from '@nmp/common';
import { AGENT_COMPAT, agentSchema } from '../src/options.js';
import { CachingResolver } from '../src/resolver/caching-resolver.js';
import { lookupSettings } from '../src/resolver/settings.js';
import { RpcMetrics } from '../src/rpc/metrics.js';
import type { RpcClient } from '../src/rpc/rpc-client.js';
import { RpcResolver } from '../src/rpc/rpc-resolver.js';
import { rpcSettings } from '../src/rpc/settings.js';
import { sample } from './prom-text.js';

const NET_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const NET_B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const ROUTER = 'cccccccc-0000-4000-8000-0000000000cc';

function port(id: string, network: string, ip: string, device: string, owner = 'compute:nova'): NeutronPort {
  return {
    id,
    network_id: network,
    mac_address: `fa:16:3e:00:00:${id.slice(-2)}`,
    fixed_ips: [{ ip_address: ip, subnet_id: `s-${network.slice(0, 4)}` }],
    device_id: device,
    device_owner: owner,
    project_id: 'p',
  } as NeutronPort;
}

const vm = (n: number) => `0000000${n}-1111-4111-8111-111111111111`;
const PORTS: NeutronPort[] = [
  port('pa01', NET_A, '10.0.0.1', vm(1)),
  port('pa02', NET_A, '10.0.0.2', vm(2)),
  port('pa03', NET_A, '10.0.0.3', vm(3)),
  port('pa04', NET_A, '10.0.0.4', vm(4)),
  port('pa05', NET_A, '10.0.0.5', vm(5)),
  port('pa06', NET_A, '10.0.0.6', vm(6)),
  // Two ports with one address on NET_A: ambiguous.
  port('pa07', NET_A, '10.0.0.7', vm(7)),
  port('pa17', NET_A, '10.0.0.7', vm(8)),
  // The same address as pa01 on another network: never NET_A's answer.
  port('pb01', NET_B, '10.0.0.1', vm(9)),
  port('pr0a', NET_A, '10.0.0.254', ROUTER, 'network:router_interface'),
  port('pr0b', NET_B, '10.0.0.253', ROUTER, 'network:router_interface'),
];

interface Call {
  readonly filters: Record<string, unknown>;
  readonly deadline: number;
  answer(ports?: NeutronPort[]): void;
  fail(err: unknown): void;
}

/** neutron's get_ports over a list: list filters are "any of", fixed_ips matches any fixed IP. */
function neutronFilter(ports: readonly NeutronPort[], filters: Record<string, unknown>): NeutronPort[] {
  return ports.filter((p) =>
    Object.entries(filters).every(([k, v]) => {
      if (k === 'fixed_ips') {
        const ips = (v as { ip_address: string[] }).ip_address;
        return (p.fixed_ips ?? []).some((f) => ips.includes(f.ip_address));
      }
      if (k === 'mac_address') return (v as string[]).includes(p.mac_address?.toLowerCase() ?? '');
      return (v as unknown[]).includes((p as unknown as Record<string, unknown>)[k]);
    }),
  );
}

/** An RpcClient whose get_ports calls wait until the test answers them (or their deadline). */
function fakeClient(ports: readonly NeutronPort[] = PORTS) {
  const calls: Call[] = [];
  let connected = true;
  const client = {
    call(_topic: string, request: { args: { filters: Record<string, unknown> } }, deadline: number) {
      return new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(client.deadlineError('get_ports', 'q-plugin', 0)),
          Math.max(0, deadline - Date.now()),
        );
        const filters = request.args.filters;
        calls.push({
          filters,
          deadline,
          answer: (answer) => {
            clearTimeout(timer);
            resolve(answer ?? neutronFilter(ports, filters));
          },
          fail: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        });
      });
    },
    deadlineError(method: string, topic: string, ms: number) {
      return new MetadataError(connected ? 'MDA_ERR_RPC_TIMEOUT' : 'MDA_ERR_RPC_UNAVAILABLE', {
        upstream: 'neutron-rpc',
        method,
        topic,
        ms,
      });
    },
    set connected(v: boolean) {
      connected = v;
    },
  };
  return { client, calls };
}

const SETTINGS = {
  timeoutMs: 5000,
  routerCacheTtlMs: 60_000,
  routerCacheSize: 16,
  routerRecheckAfterMs: 1000,
};

function resolverWith(batchMax: number, opts: { timeoutMs?: number; registry?: Registry } = {}) {
  const { client, calls } = fakeClient();
  const observer = opts.registry ? new RpcMetrics(opts.registry) : undefined;
  const resolver = new RpcResolver(
    client as unknown as RpcClient,
    { ...SETTINGS, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) },
    silentLogger(),
    async () => {},
    undefined,
    { batchMax, ...(observer ? { observer } : {}) },
  );
  return { resolver, calls, client };
}

const onA = (ip: string): LookupQuery => ({ mode: 'network', id: NET_A, ip });
const ipsOf = (c: Call) => (c.filters.fixed_ips as { ip_address: string[] }).ip_address;
const tick = () => new Promise((r) => setImmediate(r));

/** Settled outcome of a lookup: the instance id, or the error code. */
async function outcome(p: Promise<InstanceIdentity>): Promise<string> {
  try {
    return (await p).instanceId;
  } catch (err) {
    return err instanceof MetadataError ? err.code : String(err);
  }
}

test('a lone lookup goes out at once, in the single-address shape; lookups arriving meanwhile go out together when it returns', async () => {
  const { resolver, calls } = resolverWith(64);
  const first = resolver.resolve(onA('10.0.0.1'));
  await tick();
  assert.equal(calls.length, 1, 'the first lookup is not held back');
  assert.equal(
    JSON.stringify(calls[0]!.filters),
    JSON.stringify({ fixed_ips: { ip_address: ['10.0.0.1'] }, network_id: [NET_A] }),
  );
  const second = resolver.resolve(onA('10.0.0.2'));
  const third = resolver.resolve(onA('10.0.0.3'));
  await tick();
  assert.equal(calls.length, 1, 'lookups for the network wait while its call is in flight');
  calls[0]!.answer();
  assert.equal(await outcome(first), vm(1));
  await tick();
  assert.equal(calls.length, 2, 'the waiting lookups went out as one call');
  assert.deepEqual(ipsOf(calls[1]!), ['10.0.0.2', '10.0.0.3']);
  assert.deepEqual(calls[1]!.filters.network_id, [NET_A]);
  calls[1]!.answer();
  assert.deepEqual(await Promise.all([outcome(second), outcome(third)]), [vm(2), vm(3)]);
  assert.deepEqual(resolver.batchStats, { calls: 2, items: 3, waited: 2 });
});

test('a lookup for another network is not delayed by a call in flight for the first', async () => {
  const { resolver, calls } = resolverWith(64);
  const a = resolver.resolve(onA('10.0.0.1'));
  const b = resolver.resolve({ mode: 'network', id: NET_B, ip: '10.0.0.1' });
  await tick();
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[1]!.filters.network_id, [NET_B]);
  calls[1]!.answer();
  assert.equal(await outcome(b), vm(9), "NET_B's port, not NET_A's with the same address");
  calls[0]!.answer();
  assert.equal(await outcome(a), vm(1));
});

test('the batch max is honoured: a full batch goes out at once, none carries more', async () => {
  const { resolver, calls } = resolverWith(2);
  const lookups = [1, 2, 3, 4, 5, 6].map((n) => resolver.resolve(onA(`10.0.0.${n}`)));
  await tick();
  // 1 alone; 2+3 full, 4+5 full, at once; 6 waits for a call to return.
  assert.deepEqual(calls.map(ipsOf), [['10.0.0.1'], ['10.0.0.2', '10.0.0.3'], ['10.0.0.4', '10.0.0.5']]);
  calls[1]!.answer();
  await tick();
  assert.deepEqual(ipsOf(calls[3]!), ['10.0.0.6']);
  for (const c of calls) c.answer();
  assert.deepEqual(await Promise.all(lookups.map(outcome)), [1, 2, 3, 4, 5, 6].map(vm));
  assert.ok(calls.every((c) => ipsOf(c).length <= 2));
});

test('rpc_lookup_batch_max = 1: one address per call, all at once, as before', async () => {
  const { resolver, calls } = resolverWith(1);
  const lookups = [1, 2, 3].map((n) => resolver.resolve(onA(`10.0.0.${n}`)));
  await tick();
  assert.deepEqual(calls.map(ipsOf), [['10.0.0.1'], ['10.0.0.2'], ['10.0.0.3']]);
  for (const c of calls) c.answer();
  assert.deepEqual(await Promise.all(lookups.map(outcome)), [1, 2, 3].map(vm));
  assert.equal(resolver.batchStats, undefined);
});

test('demultiplexed as single lookups: an absent address is not found, two ports on one address ambiguous, the others found', async () => {
  const { resolver, calls } = resolverWith(64);
  const first = resolver.resolve(onA('10.0.0.1'));
  const rest = ['10.0.0.2', '10.0.0.99', '10.0.0.7', '10.0.0.4'].map((ip) => resolver.resolve(onA(ip)));
  await tick();
  calls[0]!.answer();
  await first;
  await tick();
  assert.deepEqual(ipsOf(calls[1]!), ['10.0.0.2', '10.0.0.99', '10.0.0.7', '10.0.0.4']);
  calls[1]!.answer();
  assert.deepEqual(await Promise.all(rest.map(outcome)), [
    vm(2),
    'MDA_ERR_PORT_NOT_FOUND',
    'MDA_ERR_PORT_AMBIGUOUS',
    vm(4),
  ]);
});

test("a server that ignores the filter still cannot hand one waiter another's port", async () => {
  const { resolver, calls } = resolverWith(64);
  const first = resolver.resolve(onA('10.0.0.1'));
  const a = resolver.resolve(onA('10.0.0.2'));
  const b = resolver.resolve(onA('10.0.0.99'));
  await tick();
  calls[0]!.answer(PORTS);
  assert.equal(await outcome(first), vm(1));
  await tick();
  calls[1]!.answer(PORTS); // every port, whatever was asked
  assert.deepEqual(await Promise.all([outcome(a), outcome(b)]), [vm(2), 'MDA_ERR_PORT_NOT_FOUND']);
});

test("a batch's failure reaches each of its waiters with the single call's code", async () => {
  const { resolver, calls } = resolverWith(64);
  const first = resolver.resolve(onA('10.0.0.1'));
  const waiting = ['10.0.0.2', '10.0.0.3'].map((ip) => resolver.resolve(onA(ip)));
  await tick();
  calls[0]!.answer();
  await first;
  await tick();
  calls[1]!.fail(
    new MetadataError('MDA_ERR_RPC_REMOTE_ERROR', { upstream: 'neutron-rpc', method: 'get_ports' }),
  );
  const errors = await Promise.all(
    waiting.map((p) =>
      p.then(
        () => undefined,
        (e: unknown) => e,
      ),
    ),
  );
  for (const e of errors) {
    assert.ok(e instanceof MetadataError);
    assert.equal(e.code, 'MDA_ERR_RPC_REMOTE_ERROR');
    assert.equal(e.status, 503);
    assert.equal(e.details.batch, 2);
  }
  assert.notEqual(errors[0], errors[1], 'each waiter its own error object');
  // Not an answer: the next lookup asks again.
  const again = resolver.resolve(onA('10.0.0.2'));
  await tick();
  assert.equal(calls.length, 3);
  calls[2]!.answer();
  assert.equal(await outcome(again), vm(2));
});

test("a waiter keeps its own deadline: it times out when its own time is up, not at the batch call's", async () => {
  const { resolver, calls } = resolverWith(64, { timeoutMs: 300 });
  const started = Date.now();
  const first = resolver.resolve(onA('10.0.0.1'));
  await new Promise((r) => setTimeout(r, 150));
  const late = resolver.resolve(onA('10.0.0.2'));
  // The first call never answers: it ends at its deadline (300 ms), then `late` goes out with its own.
  assert.equal(await outcome(first), 'MDA_ERR_RPC_TIMEOUT');
  const t1 = Date.now() - started;
  await tick();
  assert.equal(calls.length, 2);
  assert.deepEqual(ipsOf(calls[1]!), ['10.0.0.2']);
  assert.ok(calls[1]!.deadline >= started + 440, "the batch call lasts until its latest waiter's deadline");
  assert.equal(await outcome(late), 'MDA_ERR_RPC_TIMEOUT');
  const t2 = Date.now() - started;
  assert.ok(t1 >= 290 && t1 < 440, `first timed out at ${t1} ms`);
  assert.ok(t2 >= 440 && t2 < 700, `the late waiter timed out at ${t2} ms (its own deadline, 450 ms)`);
});

test('a waiter whose deadline comes before the batch call answers gets the timeout at its deadline', async () => {
  const { resolver, calls, client } = resolverWith(64, { timeoutMs: 400 });
  const first = resolver.resolve(onA('10.0.0.1'));
  await tick();
  const early = resolver.resolve(onA('10.0.0.2'));
  await new Promise((r) => setTimeout(r, 200));
  const later = resolver.resolve(onA('10.0.0.3'));
  calls[0]!.answer();
  await first;
  await tick();
  assert.deepEqual(ipsOf(calls[1]!), ['10.0.0.2', '10.0.0.3']);
  // No connection at the waiter's deadline: the code a call of its own would get then.
  client.connected = false;
  const t0 = Date.now();
  assert.equal(await outcome(early), 'MDA_ERR_RPC_UNAVAILABLE');
  assert.ok(Date.now() - t0 < 350, "at its own deadline, before the call's");
  calls[1]!.answer();
  assert.equal(await outcome(later), vm(3));
});

test("router mode: the address lookups on a router's networks are batched, and so are router interface lookups", async () => {
  const { resolver, calls } = resolverWith(64);
  const onRouter = (ip: string): LookupQuery => ({ mode: 'router', id: ROUTER, ip });
  const other = 'dddddddd-0000-4000-8000-0000000000dd';
  const a = outcome(resolver.resolve(onRouter('10.0.0.1')));
  await tick();
  assert.deepEqual(calls[0]!.filters.device_id, [ROUTER]);
  const b = outcome(resolver.resolve({ mode: 'router', id: other, ip: '10.0.0.2' }));
  await tick();
  assert.equal(calls.length, 1, "another router's interfaces wait for the call in flight");
  calls[0]!.answer();
  await tick();
  // a's address call on the router's networks; the other router's interfaces.
  const addr = calls.find((c) => c.filters.fixed_ips !== undefined)!;
  assert.deepEqual(addr.filters.network_id, [NET_A, NET_B]);
  assert.deepEqual(
    calls.find((c) => c !== calls[0] && c.filters.device_id !== undefined)!.filters.device_id,
    [other],
  );
  const c = outcome(resolver.resolve(onRouter('10.0.0.2')));
  const d = outcome(resolver.resolve(onRouter('10.0.0.3')));
  await tick();
  addr.answer();
  await tick();
  const batch = calls.at(-1)!;
  assert.deepEqual(ipsOf(batch), ['10.0.0.2', '10.0.0.3']);
  assert.deepEqual(batch.filters.network_id, [NET_A, NET_B]);
  batch.answer();
  for (const x of calls) x.answer();
  // 10.0.0.1 is on both networks of the router (pa01 and pb01): ambiguous, as a single lookup says.
  assert.deepEqual(await Promise.all([a, c, d]), ['MDA_ERR_PORT_AMBIGUOUS', vm(2), vm(3)]);
  assert.equal(await b, 'MDA_ERR_PORT_NOT_FOUND', 'a router without interfaces');
});

test('behind the cache: one address asked once however many callers, and the cache filled per address from the batch', async () => {
  const { resolver, calls } = resolverWith(64);
  const cache = new CachingResolver(resolver, { ttlMs: 5000, negativeTtlMs: 1000, maxEntries: 100 });
  const first = cache.resolve(onA('10.0.0.1'));
  const same = [
    cache.resolve(onA('10.0.0.2')),
    cache.resolve(onA('10.0.0.2')),
    cache.resolve(onA('10.0.0.3')),
  ];
  await tick();
  calls[0]!.answer();
  await first;
  await tick();
  assert.deepEqual(ipsOf(calls[1]!), ['10.0.0.2', '10.0.0.3']);
  calls[1]!.answer();
  assert.deepEqual(await Promise.all(same.map(outcome)), [vm(2), vm(2), vm(3)]);
  const hit = await cache.resolve(onA('10.0.0.3'));
  assert.equal(hit.cached, true);
  assert.equal(calls.length, 2);
  assert.equal(cache.stats.hits, 1);
  assert.equal(cache.stats.coalesced, 1);
});

test('the option: default 1, 64 accepted, 0 refused; the settings carry it; the metric counts addresses per call', async () => {
  const load = (env: Record<string, string>) =>
    loadConfig(agentSchema, {
      flags: {},
      env: { NMP_TRANSPORT_URL: 'rabbit://h/', ...env },
      compat: AGENT_COMPAT,
    }).config;
  const wide = lookupSettings({ routerCacheTtl: 5, lookupOutageGrace: 0.25 });
  assert.equal(rpcSettings(load({}), wide).lookupBatchMax, 1);
  assert.equal(rpcSettings(load({ NMP_RPC_LOOKUP_BATCH_MAX: '64' }), wide).lookupBatchMax, 64);
  assert.throws(() => load({ NMP_RPC_LOOKUP_BATCH_MAX: '0' }));

  const registry = new Registry();
  const { resolver, calls } = resolverWith(64, { registry });
  const first = resolver.resolve(onA('10.0.0.1'));
  const rest = ['10.0.0.2', '10.0.0.3', '10.0.0.4'].map((ip) => resolver.resolve(onA(ip)));
  await tick();
  calls[0]!.answer();
  await first;
  await tick();
  calls[1]!.answer();
  await Promise.all(rest);
  const text = await registry.render();
  assert.equal(sample(text, 'nmp_rpc_lookup_batch_size_count', { lookup: 'address' }), 2);
  assert.equal(sample(text, 'nmp_rpc_lookup_batch_size_sum', { lookup: 'address' }), 4);
  assert.equal(sample(text, 'nmp_rpc_lookup_batch_size_bucket', { lookup: 'address', le: '1' }), 1);
});
