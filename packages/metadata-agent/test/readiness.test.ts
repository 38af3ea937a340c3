/*
 * Readiness: recent answers make the agent ready without probing; a stale upstream is probed (once,
 * however many checks arrive), a failed or slow probe makes it not ready with the reason, and stopping
 * wins over everything.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetadataError } from '@nmp/common';
import { Readiness } from '../src/readiness.js';

function fixture(options: { nova?: () => Promise<void>; resolver?: () => Promise<void> } = {}) {
  let now = 1_000_000;
  const calls = { nova: 0, resolver: 0 };
  const readiness = new Readiness({
    windowMs: 10_000,
    probeTimeoutMs: 200,
    now: () => now,
    probeNova: () => {
      calls.nova++;
      return options.nova?.() ?? Promise.resolve();
    },
    probeResolver: () => {
      calls.resolver++;
      return options.resolver?.() ?? Promise.resolve();
    },
  });
  return { readiness, calls, advance: (ms: number) => (now += ms), at: () => now };
}

test('recent answers from both: ready, and nothing is probed', async () => {
  const f = fixture();
  f.readiness.markNova();
  f.readiness.markResolver();
  f.advance(9_000);
  const r = await f.readiness.check();
  assert.equal(r.ready, true);
  assert.deepEqual(f.calls, { nova: 0, resolver: 0 });
  assert.equal(r.nova.lastAnswer, f.at() - 9_000);
});

test('an idle agent probes what is stale; probes that succeed make it ready', async () => {
  const f = fixture();
  f.readiness.markResolver();
  f.advance(11_000);
  const r = await f.readiness.check();
  assert.equal(r.ready, true);
  assert.deepEqual(f.calls, { nova: 1, resolver: 1 });
  assert.equal(r.nova.lastAnswer, f.at());
});

test('concurrent checks share one probe per upstream', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const f = fixture({ nova: () => gate });
  f.readiness.markResolver();
  const checks = [f.readiness.check(), f.readiness.check(), f.readiness.check()];
  release();
  const results = await Promise.all(checks);
  assert.deepEqual(
    results.map((r) => r.ready),
    [true, true, true],
  );
  assert.equal(f.calls.nova, 1);
});

test('a failing probe: not ready, with how long and the last error', async () => {
  const f = fixture({
    nova: () => Promise.reject(new MetadataError('MDA_ERR_NOVA_UNREACHABLE', { cause: 'ECONNREFUSED' })),
  });
  f.readiness.markNova();
  f.readiness.markResolver();
  f.advance(30_000);
  f.readiness.markResolver();
  const r = await f.readiness.check();
  assert.equal(r.ready, false);
  assert.equal(r.resolver.ok, true);
  assert.equal(r.nova.ok, false);
  assert.equal(r.nova.reason, 'no answer for 30 s; last error: MDA_ERR_NOVA_UNREACHABLE (ECONNREFUSED)');
});

test('a probe slower than the probe timeout counts as failed; never answered is said so', async () => {
  const f = fixture({ resolver: () => new Promise(() => {}) });
  f.readiness.markNova();
  const started = Date.now();
  const r = await f.readiness.check();
  assert.ok(Date.now() - started < 2_000);
  assert.equal(r.ready, false);
  assert.equal(r.resolver.reason, 'never answered; last error: probe took longer than 200 ms');
});

test('errors seen by requests are the reason given; stopping is never ready', async () => {
  const f = fixture({ resolver: () => Promise.reject(new Error('down')) });
  f.readiness.markNova();
  f.readiness.resolverFailed(
    new MetadataError('MDA_ERR_RESOLVER_UNAVAILABLE', { upstream: 'neutron', reason: 'timeout' }),
  );
  // The probe's own error replaces the one a request saw.
  assert.match((await f.readiness.check()).resolver.reason!, /last error: down$/);
  f.readiness.markResolver();
  assert.equal((await f.readiness.check()).ready, true);
  f.readiness.stopping = true;
  const r = await f.readiness.check();
  assert.equal(r.ready, false);
  assert.equal(r.stopping, true);
});

test("a resolver's own health (the OVN index's Southbound connection) wins over recent answers", async () => {
  let health: string | undefined = 'Southbound disconnected (answering from the last copy)';
  const readiness = new Readiness({
    windowMs: 10_000,
    probeTimeoutMs: 200,
    probeNova: () => Promise.resolve(),
    probeResolver: () => Promise.resolve(),
    resolverHealth: () => health,
  });
  readiness.markNova();
  readiness.markResolver();
  const down = await readiness.check();
  assert.equal(down.ready, false);
  assert.equal(down.nova.ok, true);
  assert.equal(down.resolver.ok, false);
  assert.equal(down.resolver.reason, health);
  health = undefined;
  assert.equal((await readiness.check()).ready, true);
});
