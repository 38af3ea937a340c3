/*
 * [agent] port_cache_max_age in CachingResolver, in front of a resolver answering from a script and a
 * fake clock: with it, a used answer lives port_cache_ttl from its last use, never past max age from the
 * lookup that verified it; an answer not used for port_cache_ttl expires as before; every invalidation
 * still drops it at once (Nova 404's re-lookup, "no such port" for the address by any key, the address
 * seen on another port by any key); 0, or a max age not above the TTL, is the old behaviour (TTL from
 * the lookup, used or not).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type InstanceIdentity, type InstanceResolver, type LookupQuery, MetadataError } from '@nmp/common';
import { CachingResolver } from '../src/resolver/caching-resolver.js';
import { byNetwork, byRouter, NET, port } from './cache-fixtures.js';

/** Answers from `ports` (ip -> identity), "no such port" otherwise; counts the lookups. */
class World implements InstanceResolver {
  readonly ports = new Map<string, InstanceIdentity>();
  lookups = 0;
  async resolve(q: LookupQuery): Promise<InstanceIdentity> {
    this.lookups++;
    const p = this.ports.get(q.ip);
    if (p === undefined)
      throw new MetadataError('MDA_ERR_PORT_NOT_FOUND', {
        target: `${q.mode} ${q.id}`,
        ip: q.ip,
        case: 'no port',
        ...(q.mode === 'router' ? { networks: [NET] } : {}),
      });
    return p;
  }
  async close(): Promise<void> {}
}

const TTL = 5_000;

function setup(maxAgeMs: number | undefined) {
  const clock = { t: 1_000_000 };
  const world = new World();
  const cache = new CachingResolver(world, {
    ttlMs: TTL,
    negativeTtlMs: 1_000,
    maxEntries: 100,
    now: () => clock.t,
    ...(maxAgeMs !== undefined ? { maxAgeMs } : {}),
  });
  world.ports.set('10.0.0.5', port('vm-a', 'port-a'));
  return { clock, world, cache };
}

/** Ask for `q` every `everyMs` until `untilMs` after the start; the instance ids served. */
async function askEvery(
  s: ReturnType<typeof setup>,
  q: LookupQuery,
  everyMs: number,
  untilMs: number,
): Promise<string[]> {
  const start = s.clock.t;
  const seen: string[] = [];
  for (;;) {
    seen.push((await s.cache.resolve(q)).instanceId);
    if (s.clock.t + everyMs > start + untilMs) return seen;
    s.clock.t += everyMs;
  }
}

test('0 and absent: the old behaviour, an answer lives port_cache_ttl from its lookup however often it is used', async () => {
  for (const maxAge of [undefined, 0, TTL]) {
    const s = setup(maxAge);
    await askEvery(s, byNetwork('10.0.0.5'), 1_000, 4_000);
    assert.equal(s.world.lookups, 1, `max age ${maxAge}`);
    s.clock.t += 1_000; // 5 s after the lookup, used a second ago
    await s.cache.resolve(byNetwork('10.0.0.5'));
    assert.equal(s.world.lookups, 2, `max age ${maxAge}`);
    assert.equal(s.cache.stats.contradicted, undefined);
  }
});

test('used at intervals shorter than the TTL, one lookup lasts until max age, then it is looked up again', async () => {
  const s = setup(60_000);
  const seen = await askEvery(s, byNetwork('10.0.0.5'), 4_000, 56_000);
  assert.equal(seen.length, 15);
  assert.equal(s.world.lookups, 1, 'one lookup for 56 s of use');
  s.clock.t += 3_999; // 59.999 s after the lookup
  assert.equal((await s.cache.resolve(byNetwork('10.0.0.5'))).cached, true);
  s.clock.t += 1; // 60 s: the hard bound, although used a moment ago
  const again = await s.cache.resolve(byNetwork('10.0.0.5'));
  assert.equal(again.cached, false);
  assert.equal(s.world.lookups, 2);
  // The new lookup verifies it again: another max age of use.
  await askEvery(s, byNetwork('10.0.0.5'), 4_000, 56_000);
  assert.equal(s.world.lookups, 2);
});

test('the hard bound holds whatever the TTL: a TTL extended by use never passes max age from the lookup', async () => {
  const s = setup(12_000);
  await askEvery(s, byNetwork('10.0.0.5'), 4_900, 9_800);
  assert.equal(s.world.lookups, 1);
  s.clock.t += 2_199; // 11.999 s
  assert.equal((await s.cache.resolve(byNetwork('10.0.0.5'))).cached, true);
  s.clock.t += 1; // 12 s, not 11.999 + 5
  assert.equal((await s.cache.resolve(byNetwork('10.0.0.5'))).cached, false);
  assert.equal(s.world.lookups, 2);
});

test('an answer not used for the TTL expires as before (the address went quiet)', async () => {
  const s = setup(60_000);
  await askEvery(s, byNetwork('10.0.0.5'), 3_000, 9_000);
  assert.equal(s.world.lookups, 1);
  s.clock.t += TTL - 1;
  assert.equal((await s.cache.resolve(byNetwork('10.0.0.5'))).cached, true);
  s.clock.t += TTL; // a pause of exactly the TTL since that use
  assert.equal((await s.cache.resolve(byNetwork('10.0.0.5'))).cached, false);
  assert.equal(s.world.lookups, 2);
});

test('Nova 404 (the re-lookup without the cache) replaces a sliding answer at once', async () => {
  const s = setup(60_000);
  await askEvery(s, byNetwork('10.0.0.5'), 4_000, 20_000);
  s.world.ports.set('10.0.0.5', port('vm-b', 'port-b'));
  const fresh = await s.cache.resolve(byNetwork('10.0.0.5'), { noCache: true });
  assert.equal(fresh.instanceId, 'vm-b');
  s.clock.t += 1_000;
  assert.deepEqual(await askEvery(s, byNetwork('10.0.0.5'), 4_000, 8_000), ['vm-b', 'vm-b', 'vm-b']);
  assert.equal(s.world.lookups, 2);
});

test('"no such port" at the re-lookup leaves nothing to serve: the next request is looked up', async () => {
  const s = setup(60_000);
  await askEvery(s, byNetwork('10.0.0.5'), 4_000, 20_000);
  s.world.ports.delete('10.0.0.5');
  await assert.rejects(s.cache.resolve(byNetwork('10.0.0.5'), { noCache: true }), {
    code: 'MDA_ERR_PORT_NOT_FOUND',
  });
  s.clock.t += 1_000; // past the negative TTL
  await assert.rejects(s.cache.resolve(byNetwork('10.0.0.5')), { code: 'MDA_ERR_PORT_NOT_FOUND' });
  assert.equal(s.world.lookups, 3);
});

test('a lookup by another key that finds the address on another port drops the sliding answer at once', async () => {
  const s = setup(60_000);
  await askEvery(s, byNetwork('10.0.0.5'), 4_000, 8_000);
  // The address moved: a router-mode lookup (another namespace, another key) sees it on port-b.
  s.world.ports.set('10.0.0.5', port('vm-b', 'port-b'));
  assert.equal((await s.cache.resolve(byRouter('10.0.0.5'))).instanceId, 'vm-b');
  s.clock.t += 1_000; // well within the TTL of the network-mode answer's last use
  const after = await s.cache.resolve(byNetwork('10.0.0.5'));
  assert.equal(after.instanceId, 'vm-b');
  assert.equal(after.cached, false);
  assert.equal(s.cache.stats.contradicted, 1);
  // The same port seen again by another key (a fresh lookup) is no contradiction.
  assert.equal((await s.cache.resolve(byRouter('10.0.0.5'), { noCache: true })).instanceId, 'vm-b');
  s.clock.t += 1_000;
  assert.equal((await s.cache.resolve(byNetwork('10.0.0.5'))).cached, true);
  assert.equal(s.cache.stats.contradicted, 1);
});

test('a lookup by another key that finds no port for the address drops the sliding answer at once', async () => {
  const s = setup(60_000);
  await askEvery(s, byNetwork('10.0.0.5'), 4_000, 8_000);
  s.world.ports.delete('10.0.0.5');
  await assert.rejects(s.cache.resolve(byRouter('10.0.0.5')), { code: 'MDA_ERR_PORT_NOT_FOUND' });
  s.clock.t += 1_000;
  await assert.rejects(s.cache.resolve(byNetwork('10.0.0.5')), { code: 'MDA_ERR_PORT_NOT_FOUND' });
  assert.equal(s.cache.stats.contradicted, 1);
  assert.equal(s.world.lookups, 3);
});

test('clear() (a reload) forgets sliding answers too', async () => {
  const s = setup(60_000);
  await askEvery(s, byNetwork('10.0.0.5'), 4_000, 8_000);
  s.cache.clear();
  assert.equal((await s.cache.resolve(byNetwork('10.0.0.5'))).cached, false);
  assert.equal(s.world.lookups, 2);
});
