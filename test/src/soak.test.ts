/*
 * Soak: the whole chain (dev Nova, agent, proxy as real processes) under at least two minutes of mixed
 * good and hostile traffic: normal GETs, 404s, spoofed identity headers, oversized headers, smuggling
 * shapes, forward-proxy targets, slow clients that finish, slowloris clients that never do, and
 * connections aborted before, during and after the request. Every process must still be running at the
 * end, every request must get the answer its kind calls for, and each process's RSS and open file
 * descriptors must be flat. Samples are taken at rest (traffic paused until idle connections have timed
 * out) after the warm-up and at the end, and compared: RSS growth under 30 MB, fds back to the baseline
 * within 10. Samples under load are reported too (with a looser fd bound: connections come and go).
 *
 * Duration: NMP_SOAK_SECONDS (default 120; never less than 120 when CI is set). Bounded: every loop
 * stops at the deadline, every request has a timeout.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { Pool } from 'undici';
import { type Chain, procStats, sleep, startChain } from './fault-harness.js';

const requested = Number(process.env.NMP_SOAK_SECONDS ?? 120);
const SOAK_SECONDS = process.env.CI ? Math.max(120, requested || 120) : Math.max(5, requested || 120);
const WARM_UP_MS = Math.min(15_000, (SOAK_SECONDS * 1000) / 8);
const RSS_GROWTH_LIMIT_KB = 30 * 1024;
const FD_SLACK = 10;
const FD_SLACK_UNDER_LOAD = 40;
/** Long enough for every idle keep-alive connection on every hop to time out (2 s, 4-5 s upstream). */
const REST_MS = 6000;

type Tally = Map<string, number>;
function count(tally: Tally, key: string): void {
  tally.set(key, (tally.get(key) ?? 0) + 1);
}

/** Raw bytes on a fresh connection; the status of the first answer, or what happened instead. */
function raw(
  port: number,
  chunks: readonly string[],
  options: { gapMs?: number; abortAfterMs?: number; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    let settled = false;
    const done = (result: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done('timeout'), options.timeoutMs ?? 5000);
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => done(data === '' ? 'closed' : String(data.slice(9, 12))));
    socket.on('connect', async () => {
      if (options.abortAfterMs !== undefined) setTimeout(() => done('aborted'), options.abortAfterMs);
      for (const c of chunks) {
        if (settled || socket.destroyed) return;
        socket.write(c);
        if (options.gapMs) await sleep(options.gapMs);
      }
    });
  });
}

const GET = (path: string, extra = '') =>
  `GET ${path} HTTP/1.1\r\nHost: 169.254.169.254\r\n${extra}Connection: close\r\n\r\n`;

/** One kind of traffic: a loop until the deadline, recording what each attempt got. */
async function loop(
  name: string,
  deadline: () => boolean,
  pauseMs: number,
  once: () => Promise<string>,
  tally: Tally,
): Promise<void> {
  while (!deadline()) {
    if (traffic.paused) {
      await sleep(50);
      continue;
    }
    traffic.active++;
    try {
      count(tally, `${name} ${await once()}`);
    } finally {
      traffic.active--;
    }
    await sleep(pauseMs);
  }
}

/** Lets the test pause every loop to sample the processes at rest. */
const traffic = { paused: false, active: 0 };

async function atRest<T>(what: () => T): Promise<T> {
  traffic.paused = true;
  for (let i = 0; i < 200 && traffic.active > 0; i++) await sleep(50);
  await sleep(REST_MS);
  const value = what();
  traffic.paused = false;
  return value;
}

function sample(chain: Chain): Record<string, { rssKb: number; fds: number }> {
  return {
    nova: procStats(chain.nova!.pid),
    agent: procStats(chain.agent.pid),
    proxy: procStats(chain.proxy.pid),
  };
}

test(`soak: ${SOAK_SECONDS} s of mixed good and bad traffic, RSS and fds flat, nothing crashes`, async (t) => {
  const chain = await startChain(t, {
    proxyArgs: ['--timeout-http-request', '2', '--timeout-http-keep-alive', '2'],
  });
  const port = chain.proxyPort;
  const pool = new Pool(chain.proxyUrl, { connections: 16, pipelining: 1 });
  t.after(() => (pool.closed ? undefined : pool.destroy()));
  const tally: Tally = new Map();
  const started = Date.now();
  // The pause at rest after the warm-up does not count towards the soak's duration.
  const endAt = started + SOAK_SECONDS * 1000 + REST_MS;
  let stopAt = endAt;
  const deadline = () => Date.now() >= stopAt;

  const http = async (path: string, headers: Record<string, string> = {}, expectBody?: string) => {
    try {
      const res = await pool.request({
        method: 'GET',
        path,
        headers,
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      const body = await res.body.text();
      if (expectBody !== undefined && res.statusCode === 200 && body !== expectBody) return 'wrong-body';
      return String(res.statusCode);
    } catch (err) {
      return (err as { code?: string }).code ?? 'error';
    }
  };

  const loops = [
    // Good traffic: 12 workers.
    ...Array.from({ length: 10 }, () =>
      loop('good', deadline, 5, () => http('/latest/meta-data/instance-id', {}, 'i-00000001'), tally),
    ),
    loop('good-json', deadline, 5, () => http('/openstack/latest/meta_data.json'), tally),
    loop('not-found', deadline, 5, () => http('/openstack/latest/no-such-file'), tally),
    // Spoofed identity headers: still answered for the real source, never the spoofed one.
    loop(
      'spoofed',
      deadline,
      5,
      () =>
        http(
          '/latest/meta-data/instance-id',
          {
            'x-forwarded-for': '10.0.0.99',
            'x-instance-id': 'evil',
            'x-neutron-network-id': 'other-net',
            'x-neutron-router-id': 'r-evil',
          },
          'i-00000001',
        ),
      tally,
    ),
    // Hostile raw traffic.
    loop(
      'oversized-headers',
      deadline,
      20,
      () => raw(port, [GET('/', `X-Big: ${'a'.repeat(20_000)}\r\n`)]),
      tally,
    ),
    loop(
      'cl-te',
      deadline,
      20,
      () =>
        raw(port, [
          'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG',
        ]),
      tally,
    ),
    loop('absolute-uri', deadline, 20, () => raw(port, [GET('http://10.0.0.1/')]), tally),
    loop(
      'slow-but-complete',
      deadline,
      20,
      () => raw(port, GET('/latest/meta-data/instance-id').match(/.{1,8}/gs)!, { gapMs: 20 }),
      tally,
    ),
    ...Array.from({ length: 3 }, () =>
      loop('slowloris', deadline, 20, () => raw(port, ['GET / HTTP/1.1\r\n', 'Host: x\r\n']), tally),
    ),
    loop(
      'abort-mid-request',
      deadline,
      10,
      () => raw(port, ['GET /latest/meta-data/ HTTP/1.1\r\nHo'], { abortAfterMs: 30 }),
      tally,
    ),
    loop(
      'abort-before-answer',
      deadline,
      10,
      () => raw(port, [GET('/openstack/latest/meta_data.json')], { abortAfterMs: 0 }),
      tally,
    ),
  ];

  await sleep(WARM_UP_MS);
  const loaded = sample(chain);
  const base = await atRest(() => sample(chain));
  t.diagnostic(`after ${WARM_UP_MS} ms warm-up, under load: ${JSON.stringify(loaded)}`);
  t.diagnostic(`after warm-up, at rest: ${JSON.stringify(base)}`);
  while (Date.now() < endAt - 1000) await sleep(Math.min(10_000, endAt - 1000 - Date.now()));
  const endLoaded = sample(chain);
  stopAt = Date.now();
  await Promise.all(loops);
  await pool.close();
  const end = await atRest(() => sample(chain));
  t.diagnostic(`at the end, under load: ${JSON.stringify(endLoaded)}`);
  t.diagnostic(`at the end, at rest: ${JSON.stringify(end)}`);
  t.diagnostic(`traffic: ${JSON.stringify(Object.fromEntries([...tally].sort()))}`);

  for (const p of [chain.nova!, chain.agent, chain.proxy]) {
    assert.equal(p.child.exitCode, null, `${p.name} exited`);
    assert.equal(p.child.signalCode, null, `${p.name} was killed`);
  }
  for (const name of ['nova', 'agent', 'proxy'] as const) {
    const growth = end[name]!.rssKb - base[name]!.rssKb;
    assert.ok(growth < RSS_GROWTH_LIMIT_KB, `${name}: RSS grew by ${growth} kB`);
    assert.ok(
      Math.abs(end[name]!.fds - base[name]!.fds) <= FD_SLACK,
      `${name}: ${base[name]!.fds} fds at rest after warm-up, ${end[name]!.fds} at rest at the end`,
    );
    assert.ok(
      endLoaded[name]!.fds <= loaded[name]!.fds + FD_SLACK_UNDER_LOAD,
      `${name}: ${loaded[name]!.fds} fds under load after warm-up, ${endLoaded[name]!.fds} at the end`,
    );
  }

  // Every kind got what it calls for, and only that.
  const expected: Record<string, readonly string[]> = {
    good: ['200'],
    'good-json': ['200'],
    'not-found': ['404'],
    spoofed: ['200'],
    'oversized-headers': ['431'],
    'cl-te': ['400'],
    'absolute-uri': ['400'],
    'slow-but-complete': ['200'],
    slowloris: ['408'],
    'abort-mid-request': ['aborted'],
    'abort-before-answer': ['aborted', '200'],
  };
  for (const [key, n] of tally) {
    const [kind, result] = key.split(' ') as [string, string];
    assert.ok(expected[kind]?.includes(result!), `${kind}: ${n} x ${result}`);
  }
  for (const kind of Object.keys(expected)) {
    assert.ok(
      [...tally.keys()].some((k) => k.startsWith(`${kind} `)),
      `no ${kind} traffic at all`,
    );
  }
  const good = [...tally].filter(([k]) => k.startsWith('good ')).reduce((a, [, n]) => a + n, 0);
  assert.ok(good > SOAK_SECONDS * 50, `only ${good} good requests in ${SOAK_SECONDS} s`);
});
