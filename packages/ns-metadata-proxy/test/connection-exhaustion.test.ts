/*
 * Attack: one instance opens connections and sends nothing, to take every slot of the proxy from the other
 * instances of its network (with one cap per proxy, ~1,100 idle connections locked everyone else out
 * for the 30 s request timeout). Defences: a cap per source address (over it, a connection is closed at
 * once, unread and unanswered) and a short timeout for connections that never send a byte. Two sources
 * on one host: loopback aliases (127.0.0.2 floods, 127.0.0.3 is the neighbour).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { parseBind } from '@nmp/common';
import { until } from '@nmp/testkit';
import { ProxyMetrics } from '../src/metrics.js';
import { MetadataProxy, type ProxyLimits } from '../src/proxy.js';
import {
  assertServed,
  captureLogs,
  holdConnection,
  hostileSetup,
  logLine,
  normalRequest,
  sleep,
  startFakeAgent,
} from './helpers.js';

const FLOODER = '127.0.0.2';
const NEIGHBOUR = '127.0.0.3';

/** Open `n` silent connections from `localAddress`; says which the server closed (and whether it wrote). */
async function flood(port: number, localAddress: string, n: number) {
  const sockets: Socket[] = [];
  let closed = 0;
  let bytes = 0;
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve) => {
          const s = connect({ port, host: '127.0.0.1', localAddress });
          sockets.push(s);
          s.on('data', (d: Buffer) => {
            bytes += d.length;
          });
          s.on('error', () => {});
          s.once('close', () => {
            closed++;
          });
          s.once('connect', () => resolve());
          s.once('error', () => resolve());
        }),
    ),
  );
  return {
    sockets,
    closed: () => closed,
    bytes: () => bytes,
    open: () => sockets.filter((s) => !s.destroyed).length,
    end: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

/** A proxy in front of a fake agent, with these limits and metrics; its port and its logs. */
async function proxyWith(
  t: TestContext,
  limits: Partial<ProxyLimits>,
  options: { bind?: string; metrics?: ProxyMetrics } = {},
) {
  const agent = await startFakeAgent(t);
  const logs = captureLogs();
  const proxy = new MetadataProxy({
    identity: { mode: 'network', id: 'net-1' },
    binds: [parseBind(options.bind ?? '127.0.0.1:0')],
    socketPath: agent.socketPath,
    logger: logs.logger,
    limits,
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  const [address] = await proxy.listen();
  t.after(() => proxy.close(100));
  return { proxy, port: address!.port, logs };
}

test('one source at its cap: its next connections are closed at once, a neighbour is served', async (t) => {
  const CAP = 10;
  const { port, proxy, logs } = await hostileSetup(t, {
    limits: { maxConnectionsPerSource: CAP, maxConnections: 100, requestTimeoutMs: 10_000 },
  });
  const f = await flood(port, FLOODER, 60);
  t.after(f.end);
  await until('all 50 flood connections closed', () => f.closed() === 50, 3000);
  assert.equal(f.closed(), 50, 'every connection over the cap is closed');
  assert.equal(f.bytes(), 0, 'a refused connection got bytes');
  assert.equal(proxy.connectionsFrom(FLOODER), CAP);
  assert.equal(proxy.connections, CAP);

  assertServed(await normalRequest(port, { localAddress: NEIGHBOUR }));
  const line = logLine(logs, 'MDP_ERR_TOO_MANY_SOURCE_CONNECTIONS');
  assert.equal(line.reason, 'source-connection-limit');
  assert.equal(line.limit, CAP);
  assert.equal(line.src, FLOODER);
  assert.equal(line.level, 'warn');
  // A flood is a few log lines, not one per connection.
  assert.ok(logs.lines().filter((l) => l.code === 'MDP_ERR_TOO_MANY_SOURCE_CONNECTIONS').length <= 3);

  // Its own slots free up as it closes them: the flooder may connect again.
  f.end();
  await until('no connection left from the flooder', () => proxy.connectionsFrom(FLOODER) === 0, 3000);
  assertServed(await normalRequest(port, { localAddress: FLOODER }));
});

test('IPv4 on a dual-stack listener counts as one source, mapped or not', async (t) => {
  const { proxy, port } = await proxyWith(
    t,
    { maxConnectionsPerSource: 3, firstByteTimeoutMs: 0 },
    { bind: '[::]:0' },
  );
  const held = await Promise.all(
    Array.from({ length: 3 }, () => holdConnection(t, port, { localAddress: FLOODER })),
  );
  await until('three connections from the flooder', () => proxy.connectionsFrom(FLOODER) === 3, 3000);
  assert.equal(proxy.connectionsFrom(FLOODER), 3, 'counted under the plain IPv4 address');
  const fourth = await holdConnection(t, port, { localAddress: FLOODER });
  await fourth.closed(2000);
  for (const h of held) assert.equal(h.socket.destroyed, false);
});

test('a connection that sends nothing is closed after the first-byte timeout, unanswered; one that talks is not', async (t) => {
  const metrics = new ProxyMetrics();
  const { port, logs } = await proxyWith(
    t,
    { firstByteTimeoutMs: 300, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 10_000 },
    { metrics },
  );

  const silent = await holdConnection(t, port, { localAddress: FLOODER });
  const talking = await holdConnection(t, port, { localAddress: NEIGHBOUR });
  // A request started within the timeout (its header not even finished) keeps its connection.
  talking.socket.write('GET /latest/meta-data/instance-id HTTP/1.1\r\n');
  const ms = await silent.closed(3000);
  assert.ok(ms >= 250 && ms < 2000, `closed after ${ms} ms`);
  assert.equal(silent.received(), '', 'a silent connection gets no answer');
  await sleep(300);
  assert.equal(talking.socket.destroyed, false, 'a connection that sent a byte was closed');
  talking.socket.write('Host: x\r\nConnection: close\r\n\r\n');
  await talking.closed(3000);
  assert.match(talking.received(), /^HTTP\/1\.1 200 /);

  const line = logLine(logs, 'MDP_ERR_FIRST_BYTE_TIMEOUT');
  assert.equal(line.reason, 'no-first-byte');
  assert.equal(line.timeoutMs, 300);
  assert.equal(line.src, FLOODER);
  assert.equal(line.closed, 1);
  const text = await metrics.render();
  assert.match(text, /^nmp_proxy_refused_total\{reason="first_byte_timeout"\} 1$/m);
  assert.match(text, /^nmp_proxy_refused_total\{reason="source_connections"\} 0$/m);
});

test('a request sent in time but read late (the event loop lagging past the first-byte timeout) is served', async (t) => {
  const { port, proxy, logs } = await proxyWith(t, {
    firstByteTimeoutMs: 200,
    requestTimeoutMs: 10_000,
    keepAliveTimeoutMs: 10_000,
  });
  const late = await holdConnection(t, port, { localAddress: NEIGHBOUR });
  // Accepted: its first-byte timer runs from now.
  await until('one connection', () => proxy.connections === 1, 3000);
  assert.equal(proxy.connections, 1);
  late.socket.write('GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  // The loop is busy past the timeout: the request is in the socket, unread, when the timer comes due.
  const busyUntil = Date.now() + 500;
  while (Date.now() < busyUntil) {
    // a storm's worth of work
  }
  await late.closed(3000);
  assert.match(late.received(), /^HTTP\/1\.1 200 /, 'the request was answered');
  assert.equal(
    logs.lines().filter((l) => l.code === 'MDP_ERR_FIRST_BYTE_TIMEOUT').length,
    0,
    'closed as silent',
  );
});

test('a keep-alive connection idle after its first request is the keep-alive timeout’s, not the first-byte one’s', async (t) => {
  const { port, proxy } = await hostileSetup(t, {
    limits: { firstByteTimeoutMs: 200, keepAliveTimeoutMs: 5_000 },
  });
  const c = await holdConnection(t, port);
  c.socket.write('GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n');
  await until("the end of the answer's head", () => c.received().includes('\r\n\r\n'), 3000);
  await sleep(600);
  assert.equal(c.socket.destroyed, false);
  assert.equal(proxy.connections, 1);
});

test('per-source refusals are counted in the metrics', async (t) => {
  const metrics = new ProxyMetrics();
  const { port } = await proxyWith(t, { maxConnectionsPerSource: 2, firstByteTimeoutMs: 0 }, { metrics });
  const f = await flood(port, FLOODER, 7);
  t.after(f.end);
  await until('all five flood connections closed', () => f.closed() === 5, 3000);
  assert.match(await metrics.render(), /^nmp_proxy_refused_total\{reason="source_connections"\} 5$/m);
});
