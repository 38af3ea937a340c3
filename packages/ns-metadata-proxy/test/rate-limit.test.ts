/*
 * Attack: flood the metadata service from one instance. Per source address, with neutron's
 * [metadata_rate_limiting] semantics: requests 1..N of a window pass, N+1 and later get 429 (refused
 * requests still count), base and burst windows both apply, and, unlike haproxy, IPv4 and IPv6 sources
 * are limited at the same time. Refused requests never reach the agent; other sources are unaffected.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RateLimiter } from '../src/rate-limiter.js';
import {
  assertRefused,
  hostileSetup,
  NORMAL_PATH,
  normalRequest,
  type RawResponse,
  sleep,
  startFakeAgent,
  tempDir,
} from './helpers.js';

const TOO_MANY = 'You have sent too many requests in a given amount of time.\n';

function limiter(overrides: Partial<ConstructorParameters<typeof RateLimiter>[0]> = {}) {
  let now = 1_000_000;
  const l = new RateLimiter({
    baseWindowMs: 10_000,
    baseLimit: 10,
    burstWindowMs: 10_000,
    burstLimit: 10,
    now: () => now,
    ...overrides,
  });
  return { l, advance: (ms: number) => (now += ms) };
}

test('limiter: requests 1..10 pass, the 11th and later are refused (defaults 10 per 10 s)', () => {
  const { l } = limiter();
  for (let i = 1; i <= 10; i++) assert.equal(l.admit('10.0.0.5'), undefined, `request ${i}`);
  for (let i = 11; i <= 13; i++) {
    const denied = l.admit('10.0.0.5');
    assert.equal(denied?.code, 'MDP_ERR_RATE_LIMITED', `request ${i}`);
    assert.equal(denied?.status, 429);
  }
  assert.equal(l.admit('10.0.0.6'), undefined, 'another source is not affected');
});

test('limiter: refused requests still count, and the window slides', () => {
  const { l, advance } = limiter();
  for (let i = 0; i < 20; i++) l.admit('10.0.0.5');
  // One window later the previous one still weighs almost fully: still refused.
  advance(10_000);
  assert.ok(l.admit('10.0.0.5'), 'the 20 requests of the last window still count');
  // Two windows of silence: everything is forgotten.
  advance(20_000);
  for (let i = 1; i <= 10; i++) assert.equal(l.admit('10.0.0.5'), undefined, `request ${i}`);
  assert.ok(l.admit('10.0.0.5'));
});

test('limiter: a source that stays under the rate is never refused', () => {
  const { l, advance } = limiter();
  for (let i = 0; i < 200; i++) {
    assert.equal(l.admit('10.0.0.5'), undefined, `request ${i}`);
    advance(1_100);
  }
});

test('limiter: the burst window applies on its own', () => {
  const { l, advance } = limiter({
    baseWindowMs: 60_000,
    baseLimit: 100,
    burstWindowMs: 1_000,
    burstLimit: 3,
  });
  for (let i = 0; i < 3; i++) assert.equal(l.admit('::1'), undefined);
  assert.deepEqual(l.admit('::1')?.details, { reason: 'rate-limit', window: 'burst' });
  advance(2_000);
  assert.equal(l.admit('::1'), undefined);
});

test('limiter: the base window applies on its own', () => {
  const { l } = limiter({ baseLimit: 2, burstLimit: 100 });
  l.admit('10.0.0.1');
  l.admit('10.0.0.1');
  assert.deepEqual(l.admit('10.0.0.1')?.details, { reason: 'rate-limit', window: 'base' });
});

test('limiter: ip versions can be limited separately', () => {
  const { l } = limiter({ baseLimit: 1, burstLimit: 1, ipv6: false });
  l.admit('10.0.0.1');
  assert.ok(l.admit('10.0.0.1'));
  for (let i = 0; i < 5; i++) assert.equal(l.admit('fe80::1'), undefined);
  const v6only = limiter({ baseLimit: 1, burstLimit: 1, ipv4: false }).l;
  for (let i = 0; i < 5; i++) assert.equal(v6only.admit('10.0.0.1'), undefined);
  v6only.admit('2001:db8::1');
  assert.ok(v6only.admit('2001:db8::1'));
  assert.equal(v6only.size, 1, 'unlimited sources are not even remembered');
});

test('limiter: the table is bounded, and idle sources are swept', () => {
  const { l, advance } = limiter({ maxEntries: 100 });
  for (let i = 0; i < 10_000; i++) l.admit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  assert.equal(l.size, 100);
  // Long after, new sources push the idle ones out a few at a time.
  advance(60_000);
  for (let i = 0; i < 10; i++) l.admit(`192.168.0.${i}`);
  assert.ok(l.size <= 100);
  assert.ok(l.size >= 10);
  // The most recently seen are kept: a hot source keeps its count.
  const hot = limiter({ maxEntries: 10, baseLimit: 5, burstLimit: 5 }).l;
  for (let i = 0; i < 6; i++) hot.admit('10.9.9.9');
  for (let i = 0; i < 5; i++) hot.admit(`10.0.0.${i}`);
  assert.ok(hot.admit('10.9.9.9'), 'the hot source was forgotten');
});

test('limiter: bad settings are refused', () => {
  assert.throws(
    () => new RateLimiter({ baseWindowMs: 0, baseLimit: 1, burstWindowMs: 1, burstLimit: 1 }),
    RangeError,
  );
});

async function burst(port: number, n: number, options: { host?: string; localAddress?: string }) {
  const out: RawResponse[] = [];
  for (let i = 0; i < n; i++) out.push(await normalRequest(port, options));
  return out;
}

test('through the proxy: IPv4 and IPv6 clients limited in the same run, the 11th gets 429', async (t) => {
  const { l } = limiter();
  const { agent, port, logs } = await hostileSetup(t, { bind: '[::]:0', admit: l.admit });
  const sources = [
    { name: '127.0.0.2', options: { host: '127.0.0.1', localAddress: '127.0.0.2' } },
    { name: '127.0.0.3', options: { host: '127.0.0.1', localAddress: '127.0.0.3' } },
    { name: '::1', options: { host: '::1' } },
  ];
  // All sources at the same time.
  const results = await Promise.all(sources.map((s) => burst(port, 12, s.options)));
  for (const [i, s] of sources.entries()) {
    const statuses = results[i]!.map((r) => r.status);
    assert.deepEqual(statuses, [...Array(10).fill(200), 429, 429], s.name);
    assertRefused(results[i]![10]!, 429, TOO_MANY, false);
  }
  // Only the admitted requests reached the agent, each with its own source.
  assert.equal(agent.seen.length, 30);
  assert.equal(agent.started(), 30);
  for (const s of sources) {
    assert.equal(agent.seen.filter((x) => x.headers['x-forwarded-for'] === s.name).length, 10, s.name);
  }
  const refused = logs.lines().filter((x) => x.code === 'MDP_ERR_RATE_LIMITED');
  assert.equal(refused.length, 6);
  assert.deepEqual(new Set(refused.map((x) => x.src)), new Set(['127.0.0.2', '127.0.0.3', '::1']));
  assert.equal(refused[0]!.status, 429);
  assert.equal(refused[0]!.window, 'base');
  // A fresh source is still served at once.
  assert.equal((await normalRequest(port, { host: '127.0.0.1', localAddress: '127.0.0.4' })).status, 200);
});

test('through the proxy: a limited source is served again once the window has passed', async (t) => {
  const l = new RateLimiter({ baseWindowMs: 300, baseLimit: 3, burstWindowMs: 300, burstLimit: 3 });
  const { port } = await hostileSetup(t, { admit: l.admit });
  const first = await burst(port, 4, { localAddress: '127.0.0.5' });
  assert.deepEqual(
    first.map((r) => r.status),
    [200, 200, 200, 429],
  );
  await sleep(700);
  assert.equal((await normalRequest(port, { localAddress: '127.0.0.5' })).status, 200);
});

test('the CLI applies [metadata_rate_limiting] to IPv4 and IPv6 sources', async (t) => {
  const agent = await startFakeAgent(t);
  const port = await freePort();
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      cli,
      '--bind',
      `[::]:${port}`,
      '--network-id',
      'net-rl',
      '--metadata-proxy-socket',
      agent.socketPath,
      '--rate-limit-enabled',
      '--base-query-rate-limit',
      '4',
      '--burst-query-rate-limit',
      '4',
      '--pid-file',
      join(tempDir(t), 'proxy.pid'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  for (let i = 0; i < 100 && !out.includes('ns-metadata-proxy listening'); i++) await sleep(50);
  assert.match(out, /ns-metadata-proxy listening/);
  const listening = JSON.parse(out.split('\n').find((x) => x.includes('listening'))!);
  assert.deepEqual(listening.rateLimit, { ipVersions: ['4', '6'], base: '4/10s', burst: '4/10s' });
  for (const options of [{ host: '127.0.0.1' }, { host: '::1' }]) {
    const statuses = (await burst(port, 5, options)).map((r) => r.status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 429], options.host);
  }
  assert.equal(agent.seen.length, 8);
  assert.ok(agent.seen.every((s) => s.url === NORMAL_PATH));
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '::', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
