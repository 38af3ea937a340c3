/*
 * Attack, as an instance would run it against the standalone proxy (its CLI, default settings): open
 * ~1,100 connections and send nothing. Before the per-source cap, the proxy's 1,024 slots were all the
 * attacker's and every other instance of the network was refused for 30 s. Now the attacker holds at most
 * max_connections_per_source (100) of them, the rest are closed at once, a neighbour on the same network is
 * served at the same moment, and the held ones are closed after timeout_first_byte (5 s). The admin
 * socket counts both refusals. Two sources without root: loopback aliases 127.0.0.2 and 127.0.0.3.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promValue as metric, unixHttpGet } from '@nmp/testkit';
import { CLI, freePort, sleep, spawnCli, tempDir } from './fault-harness.js';

const ATTACKER = '127.0.0.2';
const NEIGHBOUR = '127.0.0.3';
const FLOOD = 1100;

/** One request from `localAddress`: the status, or the error code when the connection was refused or cut. */
function request(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress });
    let data = '';
    s.setEncoding('latin1');
    s.setTimeout(5_000, () => s.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    s.on('data', (d: string) => {
      data += d;
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.on('close', () => resolve(data === '' ? 'closed without an answer' : (data.split(' ')[1] ?? data)));
    s.write(
      'GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n',
    );
  });
}

test('1,100 idle connections from one source: a neighbour is still served; the flood is cut to 100, then to 0', async (t) => {
  const dir = tempDir(t, 'nmp-exhaustion-');
  const agentSocket = join(dir, 'agent.sock');
  const agent = createServer((req, res) => res.end(`served ${req.headers['x-forwarded-for']}\n`));
  await new Promise<void>((r) => agent.listen(agentSocket, () => r()));
  t.after(() => new Promise((r) => agent.close(r)));
  const admin = join(dir, 'proxy.admin');
  const port = await freePort();
  const proxy = spawnCli(t, 'proxy', CLI.proxy, [
    '--bind',
    `127.0.0.1:${port}`,
    '--network-id',
    'net-1',
    '--metadata-proxy-socket',
    agentSocket,
    '--admin-socket',
    admin,
  ]);
  await proxy.waitFor(/ns-metadata-proxy listening/);

  const flood: Socket[] = [];
  let closedByProxy = 0;
  t.after(() => {
    for (const s of flood) s.destroy();
  });
  const started = Date.now();
  await Promise.all(
    Array.from(
      { length: FLOOD },
      () =>
        new Promise<void>((resolve) => {
          const s = connect({ port, host: '127.0.0.1', localAddress: ATTACKER });
          flood.push(s);
          s.on('error', () => {});
          s.once('close', () => {
            closedByProxy++;
          });
          s.once('connect', () => resolve());
          s.once('error', () => resolve());
        }),
    ),
  );
  for (let i = 0; i < 200 && closedByProxy < FLOOD - 100; i++) await sleep(10);
  assert.equal(closedByProxy, FLOOD - 100, 'all but 100 of the flood are closed at once');

  // The neighbour, on the same network, while the attacker still holds its 100.
  assert.equal(await request(port, NEIGHBOUR), '200');
  assert.ok(Date.now() - started < 5_000, 'before the first-byte timeout');
  const during = (await unixHttpGet(admin, '/metrics')).body;
  assert.equal(metric(during, 'nmp_proxy_refused_total', { reason: 'source_connections' }), FLOOD - 100);
  assert.equal(metric(during, 'nmp_proxy_refused_total', { reason: 'connections' }), 0);

  // The 100 it holds are closed once they have been silent for timeout_first_byte (5 s by default).
  for (let i = 0; i < 200 && closedByProxy < FLOOD; i++) await sleep(50);
  assert.equal(closedByProxy, FLOOD, 'the silent connections were closed');
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 4_500 && elapsed < 10_000, `the held ones were closed after ${elapsed} ms`);
  const after = (await unixHttpGet(admin, '/metrics')).body;
  assert.equal(metric(after, 'nmp_proxy_refused_total', { reason: 'first_byte_timeout' }), 100);
  assert.equal(metric(after, 'nmp_proxy_connections'), 0);
  // The attacker may come back like anyone else.
  assert.equal(await request(port, ATTACKER), '200');

  // Log lines leave in batches (within 100 ms).
  await proxy.waitFor(/"code":"MDP_ERR_TOO_MANY_SOURCE_CONNECTIONS"/, 2_000);
  await proxy.waitFor(/"code":"MDP_ERR_FIRST_BYTE_TIMEOUT"/, 2_000);
  // A flood of 1,100 connections is a handful of log lines, not one each.
  const lines = proxy
    .output()
    .split('\n')
    .filter((l) => /MDP_ERR_(TOO_MANY_SOURCE_CONNECTIONS|FIRST_BYTE)/.test(l));
  assert.ok(lines.length <= 6, `${lines.length} log lines`);
});
