/*
 * PortResolver's fail fast, with a scripted PortSource: while the source's link is known down (resolver =
 * rpc: no broker connection after a failure) a lookup waits the grace for it and then fails at once; with
 * no link (REST) a failure that reached nothing makes later lookups fail within the grace while one probe
 * at a time goes on with the whole deadline and ends the outage; a reachable but slow server still gets the
 * whole deadline.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type LookupQuery, MetadataError, type NeutronPort, silentLogger } from '@nmp/common';
import { PortResolver, type PortSource, type SourceLink } from '../src/resolver/port-resolver.js';

const NET = '11111111-2222-4333-8444-555555555555';
const Q: LookupQuery = { mode: 'network', id: NET, ip: '10.0.0.5' };
const PORT: NeutronPort = {
  id: 'p1',
  network_id: NET,
  fixed_ips: [{ ip_address: '10.0.0.5' }],
  device_id: 'vm-1',
  project_id: 'proj',
};
const GRACE = 150;
const DEADLINE = 2000;

/** A source answering with `next()` (a port list, or a promise of one). */
function source(next: () => Promise<NeutronPort[]>, link?: SourceLink): PortSource & { asked: number } {
  const s = {
    asked: 0,
    portsWithAddress: () => {
      s.asked++;
      return next();
    },
    routerInterfaces: () => Promise.resolve([]),
    close: () => Promise.resolve(),
    ...(link ? { link } : {}),
  };
  return s;
}

function resolver(src: PortSource, rest = false) {
  return new PortResolver(
    src,
    {
      timeoutMs: DEADLINE,
      routerCacheTtlMs: 1000,
      routerCacheSize: 10,
      routerRecheckAfterMs: 1000,
      outageGraceMs: GRACE,
    },
    silentLogger(),
    {
      isOutage: (e): e is MetadataError => e instanceof MetadataError && e.status === 503,
      upstream: 'test',
      downMessage: 'down',
      upMessage: 'up',
      ...(rest
        ? { isUnreachable: (e: MetadataError) => e.details.reason === 'unreachable' }
        : {
            linkDown: () =>
              new MetadataError('MDA_ERR_RPC_UNAVAILABLE', { reason: 'no connection to RabbitMQ' }),
          }),
    },
  );
}

const unreachable = () =>
  Promise.reject(new MetadataError('MDA_ERR_RESOLVER_UNAVAILABLE', { reason: 'unreachable' }));

async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: MetadataError }> {
  const t0 = Date.now();
  try {
    const value = await p;
    return { ms: Date.now() - t0, value };
  } catch (error) {
    return { ms: Date.now() - t0, error: error as MetadataError };
  }
}

class Link implements SourceLink {
  down = true;
  #waiters: Array<() => void> = [];
  whenUp(): Promise<void> {
    return this.down ? new Promise((r) => this.#waiters.push(r)) : Promise.resolve();
  }
  up(): void {
    this.down = false;
    for (const w of this.#waiters.splice(0)) w();
  }
}

test('link known down: 503 after the grace, the source not asked; link up within the grace: answered', async () => {
  const link = new Link();
  const src = source(() => Promise.resolve([PORT]), link);
  const r = resolver(src);
  const failed = await timed(r.resolve(Q));
  assert.equal(failed.error?.code, 'MDA_ERR_RPC_UNAVAILABLE');
  assert.equal(failed.error?.details.failedFast, true);
  assert.ok(failed.ms >= GRACE - 20 && failed.ms < GRACE + 400, `${failed.ms} ms`);
  assert.equal(src.asked, 0);
  assert.equal(r.stats.failedFast, 1);

  // A reconnect that finishes within the grace: the lookup goes through.
  const pending = timed(r.resolve(Q));
  setTimeout(() => link.up(), 40);
  const ok = await pending;
  assert.equal(ok.value?.instanceId, 'vm-1');
  assert.ok(ok.ms < GRACE + 300);
  assert.equal(src.asked, 1);
});

test('link up but the server silent: the whole deadline, no fail fast', async () => {
  const link = new Link();
  link.up();
  const src = source(
    () =>
      new Promise((_r, reject) =>
        setTimeout(() => reject(new MetadataError('MDA_ERR_RPC_TIMEOUT', { reason: 'silent' })), DEADLINE),
      ),
    link,
  );
  const r = resolver(src);
  for (let i = 0; i < 2; i++) {
    const t = await timed(r.resolve(Q));
    assert.equal(t.error?.code, 'MDA_ERR_RPC_TIMEOUT');
    assert.ok(t.ms >= DEADLINE - 50, `lookup ${i} failed after ${t.ms} ms`);
  }
  assert.equal(r.stats.failedFast, 0);
});

test('no link: after a failure that reached nothing, lookups fail within the grace; one probe ends the outage', async () => {
  let answer: () => Promise<NeutronPort[]> = unreachable;
  const src = source(() => answer());
  const r = resolver(src, true);
  // The failure itself is fast (refused): its own error, not a fail fast.
  const first = await timed(r.resolve(Q));
  assert.equal(first.error?.details.failedFast, undefined);

  // Unreachable now and slow to say so (a connect timeout): the probe goes on, callers get 503 at the grace.
  let release!: () => void;
  answer = () =>
    new Promise((resolve) => {
      release = () => resolve([PORT]);
    });
  const asked = src.asked;
  const a = await timed(r.resolve(Q));
  assert.equal(a.error?.code, 'MDA_ERR_RESOLVER_UNAVAILABLE');
  assert.equal(a.error?.details.failedFast, true);
  assert.ok(a.ms < GRACE + 400, `${a.ms} ms`);
  const b = await timed(r.resolve(Q));
  assert.equal(b.error?.details.failedFast, true);
  assert.equal(src.asked, asked + 1, 'one probe at a time');

  // The probe gets through: the outage is over, lookups are answered again.
  release();
  await new Promise((res) => setTimeout(res, 20));
  answer = () => Promise.resolve([PORT]);
  const c = await timed(r.resolve(Q));
  assert.equal(c.value?.instanceId, 'vm-1');
  assert.equal(r.stats.failedFast, 2);
});

test('no link: a timeout on a reachable server does not make the next lookup fail fast', async () => {
  const src = source(() =>
    Promise.reject(new MetadataError('MDA_ERR_RESOLVER_UNAVAILABLE', { reason: 'timeout' })),
  );
  const r = resolver(src, true);
  await assert.rejects(r.resolve(Q));
  await assert.rejects(r.resolve(Q), (e: MetadataError) => e.details.failedFast === undefined);
  assert.equal(src.asked, 2);
});
