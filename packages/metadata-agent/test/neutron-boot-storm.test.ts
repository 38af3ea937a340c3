/*
 * CachingResolver(NeutronResolver) under the conditions DECISIONS.md names, against the fake on real
 * sockets: a boot storm (1,000 concurrent lookups from 50 instances -> at most 50 port lookups within one
 * TTL), a port moving to another instance (served correctly on the second request at the latest - in
 * practice the first, through the handler's one uncached re-lookup after a Nova 404), and Neutron down,
 * failing or slow (503 quickly, never longer than the configured timeout, and recovery when it is back).
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { createLogger, type InstanceIdentity, type LookupQuery } from '@nmp/common';
import {
  createFakeOpenStack,
  FAKE_DEFAULTS,
  type FakeOpenStackOptions,
  generatePorts,
} from '@nmp/openstack-fakes';
import { createNeutronResolver, type NeutronResolverOptions } from '../src/neutron/index.js';
import { CachingResolver, type CachingResolverOptions } from '../src/resolver/caching-resolver.js';
import { expectResolverUnavailable, withoutPort } from './helpers.js';

async function start(
  t: TestContext,
  fakeOptions: FakeOpenStackOptions,
  options: Partial<NeutronResolverOptions> = {},
  cache: Partial<CachingResolverOptions> = {},
) {
  const fake = createFakeOpenStack(fakeOptions);
  await fake.listen();
  t.after(() => fake.close());
  const lines: string[] = [];
  const logger = createLogger({ name: 'test', level: 'debug' }, { write: (s: string) => void lines.push(s) });
  const neutron = createNeutronResolver(
    {
      authUrl: fake.authUrl,
      authType: 'password',
      username: FAKE_DEFAULTS.username,
      password: FAKE_DEFAULTS.password,
      userDomainName: 'Default',
      projectName: FAKE_DEFAULTS.projectName,
      projectDomainName: 'Default',
      ...options,
    },
    logger,
  );
  const resolver = new CachingResolver(neutron, {
    ttlMs: 5000,
    negativeTtlMs: 1000,
    maxEntries: 10_000,
    ...cache,
  });
  t.after(() => resolver.close());
  return { fake, neutron, resolver, lines };
}

describe('boot storm', () => {
  const topo = generatePorts({ networks: 1, instancesPerNetwork: 50 });

  for (const mode of ['network', 'router'] as const) {
    test(`${mode} mode: 1,000 concurrent requests from 50 instances -> at most 50 port lookups within one TTL`, async (t) => {
      const { fake, resolver } = await start(t, { ports: topo.ports, latencyMs: 2 });
      const queries: LookupQuery[] = [];
      for (let round = 0; round < 20; round++)
        for (const i of topo.instances)
          queries.push({ mode, id: mode === 'network' ? i.networkId : topo.routerId, ip: i.ip });
      const t0 = performance.now();
      const answers = await Promise.all(queries.map((q) => resolver.resolve(q)));
      const elapsed = performance.now() - t0;
      answers.forEach((a, n) => {
        assert.equal(a.instanceId, topo.instances[n % 50]!.instanceId);
      });
      assert.ok(elapsed < 5000, `storm took ${elapsed} ms, longer than the TTL`);
      assert.ok(fake.counts.portLookups <= 50, `${fake.counts.portLookups} port lookups`);
      assert.equal(fake.counts.routerLookups, mode === 'router' ? 1 : 0);
      assert.equal(fake.counts.tokens, 1);
      assert.ok(fake.counts.connections <= 32, `${fake.counts.connections} connections (keep-alive pool)`);
      // A second wave within the TTL is served from the cache entirely.
      const again = await Promise.all(queries.map((q) => resolver.resolve(q)));
      assert.ok(again.every((a) => a.cached));
      assert.ok(fake.counts.portLookups <= 50);
      assert.equal(resolver.stats.hits, 1000);
    });
  }
});

describe('a port moved to another instance', () => {
  const topo = generatePorts({ networks: 1, instancesPerNetwork: 3 });
  const moved = topo.instances[0]!;
  const q: LookupQuery = { mode: 'network', id: moved.networkId, ip: moved.ip };

  /**
   * What the agent's request handler does (DECISIONS.md "Cache"): forward with the identity; if Nova
   * answers 404 and the identity came from the cache, look up once more without the cache.
   */
  async function request(resolver: CachingResolver, nova: Set<string>): Promise<InstanceIdentity | 404> {
    let identity = await resolver.resolve(q);
    if (!nova.has(identity.instanceId) && identity.cached)
      identity = await resolver.resolve(q, { noCache: true });
    return nova.has(identity.instanceId) ? identity : 404;
  }

  test('the old instance is gone: served correctly at once, with exactly one uncached re-lookup', async (t) => {
    const { fake, resolver } = await start(t, { ports: topo.ports }, {}, { ttlMs: 60_000 });
    const nova = new Set(topo.instances.map((i) => i.instanceId));
    const initial = await request(resolver, nova);
    assert.equal(initial !== 404 && initial.instanceId, moved.instanceId);
    assert.equal(fake.counts.portLookups, 1);

    // The address is reused: the old instance is deleted, the port now belongs to a new one.
    nova.delete(moved.instanceId);
    nova.add('new-instance');
    fake.movePort(moved.portId, 'new-instance', 'new-project');

    const first = await request(resolver, nova);
    assert.deepEqual(withoutPort(first as InstanceIdentity), {
      instanceId: 'new-instance',
      projectId: 'new-project',
      cached: false,
    });
    assert.equal(fake.counts.portLookups, 2, 'exactly one uncached re-lookup');
    const second = await request(resolver, nova);
    assert.deepEqual(withoutPort(second as InstanceIdentity), {
      instanceId: 'new-instance',
      projectId: 'new-project',
      cached: true,
    });
    assert.equal(fake.counts.portLookups, 2);
  });

  test('without a Nova 404 the previous answer lives at most one TTL', async (t) => {
    const { fake, resolver } = await start(t, { ports: topo.ports }, {}, { ttlMs: 300 });
    assert.equal((await resolver.resolve(q)).instanceId, moved.instanceId);
    fake.movePort(moved.portId, 'new-instance');
    assert.equal((await resolver.resolve(q)).instanceId, moved.instanceId, 'cached within the TTL');
    await new Promise((r) => setTimeout(r, 350));
    assert.equal((await resolver.resolve(q)).instanceId, 'new-instance');
  });

  test('a new port appears within the negative TTL of a "not found"', async (t) => {
    const { fake, resolver } = await start(t, { ports: topo.ports }, {}, { negativeTtlMs: 300 });
    const newcomer: LookupQuery = { mode: 'network', id: moved.networkId, ip: '10.0.0.77' };
    await assert.rejects(resolver.resolve(newcomer), { code: 'MDA_ERR_PORT_NOT_FOUND' });
    fake.addPort({
      network_id: moved.networkId,
      fixed_ips: [{ ip_address: '10.0.0.77' }],
      device_id: 'late-vm',
      project_id: 'p',
    });
    await assert.rejects(resolver.resolve(newcomer), { code: 'MDA_ERR_PORT_NOT_FOUND' });
    await new Promise((r) => setTimeout(r, 350));
    assert.equal((await resolver.resolve(newcomer)).instanceId, 'late-vm');
  });
});

describe('Neutron unavailable', () => {
  const topo = generatePorts({ networks: 1, instancesPerNetwork: 20 });
  const qs = topo.instances.map((i): LookupQuery => ({ mode: 'network', id: i.networkId, ip: i.ip }));

  test('down (connection refused): 503 quickly for every request, one log line, recovery when it returns', async (t) => {
    const { fake, resolver, lines } = await start(t, { ports: topo.ports });
    await resolver.resolve(qs[0]!);
    await fake.close();
    const t0 = performance.now();
    const failures = await Promise.all(
      Array.from({ length: 200 }, (_, n) => expectResolverUnavailable(resolver.resolve(qs[1 + (n % 19)]!))),
    );
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 1000, `503s took ${elapsed} ms`);
    assert.equal(failures[0]!.details.upstream, 'neutron');
    assert.equal(failures[0]!.details.reason, 'unreachable');
    assert.equal(lines.filter((l) => l.includes('neutron lookups failing')).length, 1);

    await fake.listen();
    const back = await resolver.resolve(qs[5]!);
    assert.equal(back.instanceId, topo.instances[5]!.instanceId);
    assert.equal(lines.filter((l) => l.includes('neutron lookups working again')).length, 1);
  });

  for (const failure of [500, 503, 'reset'] as const) {
    test(`answers ${failure}: 503, not cached, recovery`, async (t) => {
      const { fake, resolver } = await start(t, { ports: topo.ports });
      fake.setFailure(failure);
      const e = await expectResolverUnavailable(resolver.resolve(qs[0]!));
      assert.equal(e.details.upstream, 'neutron');
      if (typeof failure === 'number') assert.equal(e.details.status, failure);
      fake.setFailure(null);
      assert.equal((await resolver.resolve(qs[0]!)).instanceId, topo.instances[0]!.instanceId);
    });
  }

  test('slow or silent Neutron: 503 after the configured timeout, not later', async (t) => {
    const { fake, resolver } = await start(t, { ports: topo.ports }, { timeoutMs: 300 });
    await resolver.resolve(qs[0]!);
    for (const slow of ['latency', 'hang'] as const) {
      if (slow === 'latency') fake.setLatency(5000);
      else fake.setFailure('hang');
      const t0 = performance.now();
      const e = await expectResolverUnavailable(resolver.resolve(qs[slow === 'latency' ? 1 : 2]!));
      const elapsed = performance.now() - t0;
      assert.equal(e.details.reason, 'timeout');
      assert.ok(elapsed >= 250 && elapsed < 800, `${slow}: 503 after ${elapsed} ms (timeout 300 ms)`);
      fake.setLatency(0);
      fake.setFailure(null);
    }
    assert.equal((await resolver.resolve(qs[3]!)).instanceId, topo.instances[3]!.instanceId);
  });

  test('the timeout covers the whole lookup: slow Keystone + slow Neutron together', async (t) => {
    const { resolver } = await start(
      t,
      { ports: topo.ports, keystoneLatencyMs: 200, latencyMs: 200 },
      { timeoutMs: 300 },
    );
    const t0 = performance.now();
    const e = await expectResolverUnavailable(resolver.resolve(qs[0]!));
    const elapsed = performance.now() - t0;
    assert.equal(e.details.upstream, 'neutron');
    assert.ok(elapsed < 800, `503 after ${elapsed} ms (timeout 300 ms)`);
  });

  test('Keystone down at start: 503 naming keystone, then recovery', async (t) => {
    const { fake, resolver } = await start(t, { ports: topo.ports });
    fake.setFailure(500, 'keystone');
    const e = await expectResolverUnavailable(resolver.resolve(qs[0]!));
    assert.equal(e.details.upstream, 'keystone');
    assert.equal(e.details.status, 500);
    fake.setFailure(null, 'keystone');
    assert.equal((await resolver.resolve(qs[0]!)).instanceId, topo.instances[0]!.instanceId);
  });
});
