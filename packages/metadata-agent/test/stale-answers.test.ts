/*
 * [cache] serve_stale_on_outage in CachingResolver, in front of an inner resolver answering from a script
 * and a fake clock: off, an outage is 503; on, the last verified answer is served within its max age,
 * marked; never after a lookup saw the port gone (404) or the address on another port (by any key: a
 * router-mode answer is dropped when a network-mode lookup finds the address elsewhere), never after Nova
 * doubted it (noCache), never past max age, never for an answer (a remote error) that is not an outage.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type InstanceIdentity, type InstanceResolver, type LookupQuery, MetadataError } from '@nmp/common';
import { CachingResolver } from '../src/resolver/caching-resolver.js';
import { byNetwork, byRouter, NET, port } from './cache-fixtures.js';

const outage = () => new MetadataError('MDA_ERR_RPC_UNAVAILABLE', { reason: 'no connection to RabbitMQ' });
const gone = (q: LookupQuery) =>
  new MetadataError('MDA_ERR_PORT_NOT_FOUND', {
    target: `${q.mode} ${q.id}`,
    ip: q.ip,
    case: 'no port with a device',
    ...(q.mode === 'router' ? { networks: [NET] } : {}),
  });

/** Answers from `world` (ip -> identity), or `down` while the service is unreachable. */
class World implements InstanceResolver {
  down: MetadataError | undefined = undefined;
  readonly ports = new Map<string, InstanceIdentity>();
  async resolve(q: LookupQuery): Promise<InstanceIdentity> {
    if (this.down) throw this.down;
    const p = this.ports.get(q.ip);
    if (!p) throw gone(q);
    return p;
  }
  async close(): Promise<void> {}
}

function setup(stale: boolean, maxAgeMs = 60_000) {
  const clock = { t: 1_000_000 };
  const world = new World();
  const cache = new CachingResolver(world, {
    // No reuse: every lookup asks the world, as after port_cache_ttl.
    ttlMs: 0,
    negativeTtlMs: 0,
    maxEntries: 100,
    now: () => clock.t,
    ...(stale ? { stale: { maxAgeMs, maxEntries: 100 } } : {}),
  });
  return { clock, world, cache };
}

test('off (the default): an outage is 503 even for an address looked up a moment ago', async () => {
  const { world, cache } = setup(false);
  world.ports.set('10.0.0.5', port('vm-a', 'pa'));
  assert.equal((await cache.resolve(byNetwork('10.0.0.5'))).instanceId, 'vm-a');
  world.down = outage();
  await assert.rejects(cache.resolve(byNetwork('10.0.0.5')), { code: 'MDA_ERR_RPC_UNAVAILABLE' });
  assert.equal(cache.stats.stale, undefined);
});

test('on: served within max age and marked with its age; refused past it', async () => {
  const { clock, world, cache } = setup(true, 10_000);
  world.ports.set('10.0.0.5', port('vm-a', 'pa'));
  await cache.resolve(byNetwork('10.0.0.5'));
  world.down = outage();
  clock.t += 4_000;
  const served = await cache.resolve(byNetwork('10.0.0.5'));
  assert.equal(served.instanceId, 'vm-a');
  assert.equal(served.staleAgeMs, 4_000);
  assert.equal(served.cached, true, "a Nova 404 to it earns the handler's uncached re-lookup");
  clock.t += 6_001;
  await assert.rejects(cache.resolve(byNetwork('10.0.0.5')), { code: 'MDA_ERR_RPC_UNAVAILABLE' });
  assert.deepEqual(cache.stats.stale, { served: 1, refusedTooOld: 1, contradicted: 0, size: 1 });
  // Never cached as a fresh answer either: once the service is back, it is asked.
  world.down = undefined;
  world.ports.set('10.0.0.5', port('vm-b', 'pb'));
  assert.equal((await cache.resolve(byNetwork('10.0.0.5'))).instanceId, 'vm-b');
});

test('refused after a lookup saw the port gone', async () => {
  const { world, cache } = setup(true);
  world.ports.set('10.0.0.5', port('vm-a', 'pa'));
  await cache.resolve(byNetwork('10.0.0.5'));
  world.ports.delete('10.0.0.5');
  await assert.rejects(cache.resolve(byNetwork('10.0.0.5')), { code: 'MDA_ERR_PORT_NOT_FOUND' });
  world.down = outage();
  await assert.rejects(cache.resolve(byNetwork('10.0.0.5')), { code: 'MDA_ERR_RPC_UNAVAILABLE' });
});

test('refused after the address moved to another port, whichever key saw it', async () => {
  const { world, cache } = setup(true);
  world.ports.set('10.0.0.7', port('vm-c', 'pc'));
  // Known through the router (router mode) ...
  assert.equal((await cache.resolve(byRouter('10.0.0.7'))).instanceId, 'vm-c');
  // ... and then seen on another port through the network (network mode).
  world.ports.set('10.0.0.7', port('vm-c2', 'pc2'));
  assert.equal((await cache.resolve(byNetwork('10.0.0.7'))).instanceId, 'vm-c2');
  world.down = outage();
  await assert.rejects(cache.resolve(byRouter('10.0.0.7')), { code: 'MDA_ERR_RPC_UNAVAILABLE' });
  // The key that saw the move has the new answer: never the old instance.
  assert.equal((await cache.resolve(byNetwork('10.0.0.7'))).instanceId, 'vm-c2');
  assert.equal(cache.stats.stale?.contradicted, 1);
});

test('a router-mode "not found" over its networks drops what a network-mode lookup knew there', async () => {
  const { world, cache } = setup(true);
  world.ports.set('10.0.0.8', port('vm-d', 'pd'));
  await cache.resolve(byNetwork('10.0.0.8'));
  world.ports.delete('10.0.0.8');
  await assert.rejects(cache.resolve(byRouter('10.0.0.8')), { code: 'MDA_ERR_PORT_NOT_FOUND' });
  world.down = outage();
  await assert.rejects(cache.resolve(byNetwork('10.0.0.8')), { code: 'MDA_ERR_RPC_UNAVAILABLE' });
});

test('never after Nova doubted it (the uncached re-lookup), never for an answer that is not an outage', async () => {
  const { world, cache } = setup(true);
  world.ports.set('10.0.0.5', port('vm-a', 'pa'));
  world.ports.set('10.0.0.6', port('vm-b', 'pb'));
  await cache.resolve(byNetwork('10.0.0.5'));
  await cache.resolve(byNetwork('10.0.0.6'));
  world.down = outage();
  // Nova answered 404 to vm-a: the handler asks again without the cache, during the outage.
  await assert.rejects(cache.resolve(byNetwork('10.0.0.5'), { noCache: true }), {
    code: 'MDA_ERR_RPC_UNAVAILABLE',
  });
  await assert.rejects(cache.resolve(byNetwork('10.0.0.5')), { code: 'MDA_ERR_RPC_UNAVAILABLE' });
  // neutron-server answered, with an exception: not an outage of the lookup service.
  world.down = new MetadataError('MDA_ERR_RPC_REMOTE_ERROR', { remoteClass: 'DBError' });
  await assert.rejects(cache.resolve(byNetwork('10.0.0.6')), { code: 'MDA_ERR_RPC_REMOTE_ERROR' });
  // REST outages count as well.
  world.down = new MetadataError('MDA_ERR_RESOLVER_UNAVAILABLE', { reason: 'unreachable' });
  assert.equal((await cache.resolve(byNetwork('10.0.0.6'))).instanceId, 'vm-b');
});
