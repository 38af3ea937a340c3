/*
 * CachingResolver on its own, in front of a scripted resolver and a fake clock: TTL, negative entries,
 * 503s never kept, coalescing, noCache refresh, LRU bound, and the ordering invariant (a slow old lookup
 * never overwrites a newer answer).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type InstanceIdentity,
  type InstanceResolver,
  type LookupQuery,
  MetadataError,
  type ResolveOptions,
} from '@nmp/common';
import { CachingResolver, cacheKey } from '../src/resolver/caching-resolver.js';

interface Call {
  readonly query: LookupQuery;
  readonly options: ResolveOptions | undefined;
  resolve(v: InstanceIdentity): void;
  reject(e: unknown): void;
}

/** An inner resolver whose answers the test hands out by hand. */
class Scripted implements InstanceResolver {
  readonly calls: Call[] = [];
  closed = false;
  resolve(query: LookupQuery, options?: ResolveOptions): Promise<InstanceIdentity> {
    return new Promise((resolve, reject) => {
      this.calls.push({ query, options, resolve, reject });
    });
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const NET = 'net-1';
const q = (ip: string, extra: Partial<LookupQuery> = {}): LookupQuery => ({
  mode: 'network',
  id: NET,
  ip,
  ...extra,
});
const vm = (id: string): InstanceIdentity => ({ instanceId: id, projectId: 'p', cached: false });
const notFound = (ip: string) =>
  new MetadataError('MDA_ERR_PORT_NOT_FOUND', {
    target: `network ${NET}`,
    network: NET,
    ip,
    case: 'no port',
  });

function setup(over: Partial<ConstructorParameters<typeof CachingResolver>[1]> = {}) {
  const clock = { t: 1_000_000 };
  const inner = new Scripted();
  const cache = new CachingResolver(inner, {
    ttlMs: 5000,
    negativeTtlMs: 1000,
    maxEntries: 100,
    now: () => clock.t,
    ...over,
  });
  return { clock, inner, cache };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('CachingResolver', () => {
  test('key: mode, id and the MAC for link-local lookups, else the IP', () => {
    assert.equal(cacheKey(q('10.0.0.5')), 'network|net-1|ip=10.0.0.5');
    assert.equal(
      cacheKey({ mode: 'router', id: 'r', ip: 'fe80::1', mac: '02:00:00:00:00:01' }),
      'router|r|mac=02:00:00:00:00:01',
    );
    assert.notEqual(cacheKey(q('10.0.0.5')), cacheKey({ ...q('10.0.0.5'), mode: 'router' }));
  });

  test('a hit within the TTL is served from the cache with cached: true; after the TTL it is looked up again', async () => {
    const { clock, inner, cache } = setup();
    const first = cache.resolve(q('10.0.0.5'));
    await tick();
    inner.calls[0]!.resolve(vm('a'));
    assert.deepEqual(await first, vm('a'));
    clock.t += 4999;
    assert.deepEqual(await cache.resolve(q('10.0.0.5')), { ...vm('a'), cached: true });
    assert.equal(inner.calls.length, 1);
    clock.t += 1;
    const again = cache.resolve(q('10.0.0.5'));
    await tick();
    assert.equal(inner.calls.length, 2);
    inner.calls[1]!.resolve(vm('b'));
    assert.deepEqual(await again, vm('b'));
    assert.deepEqual(cache.stats, {
      hits: 1,
      negativeHits: 0,
      misses: 2,
      coalesced: 0,
      refreshes: 0,
      evictions: 0,
      size: 1,
    });
  });

  test('concurrent misses for one key share one lookup; different keys do not', async () => {
    const { inner, cache } = setup();
    const all = Array.from({ length: 100 }, (_, i) =>
      cache.resolve(q(i % 2 === 0 ? '10.0.0.5' : '10.0.0.6')),
    );
    await tick();
    assert.equal(inner.calls.length, 2);
    inner.calls[0]!.resolve(vm('a'));
    inner.calls[1]!.resolve(vm('b'));
    const out = await Promise.all(all);
    assert.ok(out.every((r, i) => r.instanceId === (i % 2 === 0 ? 'a' : 'b') && r.cached === false));
    assert.equal(cache.stats.coalesced, 98);
  });

  test('404 answers are cached for the negative TTL only', async () => {
    const { clock, inner, cache } = setup();
    const first = cache.resolve(q('10.0.0.9'));
    await tick();
    inner.calls[0]!.reject(notFound('10.0.0.9'));
    await assert.rejects(first, { code: 'MDA_ERR_PORT_NOT_FOUND' });
    clock.t += 999;
    await assert.rejects(cache.resolve(q('10.0.0.9')), (e: MetadataError) => {
      assert.equal(e.code, 'MDA_ERR_PORT_NOT_FOUND');
      assert.equal(e.details.cached, true);
      assert.equal(e.message, `Instance was not found on network ${NET}.`);
      return true;
    });
    assert.equal(inner.calls.length, 1);
    clock.t += 1;
    const later = cache.resolve(q('10.0.0.9'));
    await tick();
    assert.equal(inner.calls.length, 2);
    inner.calls[1]!.resolve(vm('new'));
    assert.equal((await later).instanceId, 'new');
  });

  test('503s are never cached (the next request asks again)', async () => {
    const { inner, cache } = setup();
    const first = cache.resolve(q('10.0.0.5'));
    await tick();
    inner.calls[0]!.reject(new MetadataError('MDA_ERR_RESOLVER_UNAVAILABLE', { upstream: 'neutron' }));
    await assert.rejects(first, { code: 'MDA_ERR_RESOLVER_UNAVAILABLE' });
    const second = cache.resolve(q('10.0.0.5'));
    await tick();
    assert.equal(inner.calls.length, 2);
    inner.calls[1]!.resolve(vm('a'));
    assert.equal((await second).instanceId, 'a');
  });

  test('noCache bypasses a live entry, passes noCache down, and its answer replaces the entry', async () => {
    const { inner, cache } = setup();
    const first = cache.resolve(q('10.0.0.5'));
    await tick();
    inner.calls[0]!.resolve(vm('old'));
    await first;
    assert.equal((await cache.resolve(q('10.0.0.5'))).cached, true);
    const fresh = cache.resolve(q('10.0.0.5'), { noCache: true });
    await tick();
    assert.equal(inner.calls.length, 2);
    assert.deepEqual(inner.calls[1]!.options, { noCache: true });
    // While the refresh runs, ordinary callers wait for it instead of getting the stale entry.
    const meanwhile = cache.resolve(q('10.0.0.5'));
    inner.calls[1]!.resolve(vm('new'));
    assert.deepEqual(await fresh, vm('new'));
    assert.deepEqual(await meanwhile, vm('new'));
    assert.deepEqual(await cache.resolve(q('10.0.0.5')), { ...vm('new'), cached: true });
    assert.equal(cache.stats.refreshes, 1);
  });

  test('noCache never joins an ordinary lookup already in flight', async () => {
    const { inner, cache } = setup();
    const ordinary = cache.resolve(q('10.0.0.5'));
    const fresh = cache.resolve(q('10.0.0.5'), { noCache: true });
    await tick();
    assert.equal(inner.calls.length, 2);
    // The fresh answer lands first; the older lookup finishing later must not overwrite it.
    inner.calls[1]!.resolve(vm('new'));
    await fresh;
    inner.calls[0]!.resolve(vm('old'));
    await ordinary;
    assert.equal((await cache.resolve(q('10.0.0.5'))).instanceId, 'new');
  });

  test('size bound: least recently used entries are dropped first', async () => {
    const { inner, cache } = setup({ maxEntries: 2 });
    for (const ip of ['10.0.0.1', '10.0.0.2']) {
      const p = cache.resolve(q(ip));
      await tick();
      inner.calls.at(-1)!.resolve(vm(ip));
      await p;
    }
    await cache.resolve(q('10.0.0.1')); // touch .1 so .2 is the oldest
    const p3 = cache.resolve(q('10.0.0.3'));
    await tick();
    inner.calls.at(-1)!.resolve(vm('10.0.0.3'));
    await p3;
    assert.equal(cache.stats.size, 2);
    assert.equal(cache.stats.evictions, 1);
    assert.equal((await cache.resolve(q('10.0.0.1'))).cached, true);
    const p2 = cache.resolve(q('10.0.0.2'));
    await tick();
    assert.equal(inner.calls.length, 4, '10.0.0.2 was evicted and looked up again');
    inner.calls.at(-1)!.resolve(vm('10.0.0.2'));
    await p2;
  });

  test('TTL 0 or size 0 caches nothing but still coalesces', async () => {
    for (const over of [{ ttlMs: 0, negativeTtlMs: 0 }, { maxEntries: 0 }]) {
      const { inner, cache } = setup(over);
      const a = cache.resolve(q('10.0.0.5'));
      const b = cache.resolve(q('10.0.0.5'));
      await tick();
      assert.equal(inner.calls.length, 1);
      inner.calls[0]!.resolve(vm('a'));
      await Promise.all([a, b]);
      const c = cache.resolve(q('10.0.0.5'));
      await tick();
      assert.equal(inner.calls.length, 2);
      inner.calls[1]!.resolve(vm('a'));
      assert.equal((await c).cached, false);
    }
  });

  test('a synchronous throw from the inner resolver becomes a rejection', async () => {
    const cache = new CachingResolver(
      {
        resolve: () => {
          throw new Error('boom');
        },
        close: async () => {},
      },
      { ttlMs: 1000, negativeTtlMs: 1000, maxEntries: 10 },
    );
    await assert.rejects(cache.resolve(q('10.0.0.5')), /boom/);
    await assert.rejects(cache.resolve(q('10.0.0.5')), /boom/);
  });

  test('close() closes the inner resolver', async () => {
    const { inner, cache } = setup();
    await cache.close();
    assert.equal(inner.closed, true);
  });
});
