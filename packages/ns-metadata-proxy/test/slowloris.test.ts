/*
 * Attack: slowloris. Open connections and send the request a byte at a time (or nothing at all, or a
 * body that never completes) to hold the proxy's connections forever. Each such connection gets 408
 * once the request timeout passes and is closed, while other clients are served throughout.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertAgentSawOnlyNormal,
  assertServed,
  holdConnection,
  hostileSetup,
  logLine,
  normalRequest,
  sleep,
} from './helpers.js';

const TIMEOUT_MS = 600;
const REFUSAL = "Your browser didn't send a complete request in time.\n";

/** Sends `text` a byte every `everyMs` until done or the connection closes. */
async function dribble(socket: import('node:net').Socket, text: string, everyMs: number): Promise<void> {
  for (const ch of text) {
    if (socket.destroyed || !socket.writable) return;
    socket.write(ch);
    await sleep(everyMs);
  }
}

function assert408(received: string): void {
  assert.match(received, /^HTTP\/1\.1 408 /);
  assert.match(received, /\r\nConnection: close\r\n/i);
  assert.ok(received.endsWith(`\r\n\r\n${REFUSAL}`), received);
}

test('headers sent a byte at a time: 408 and closed after the request timeout; others served meanwhile', async (t) => {
  const { agent, port, logs } = await hostileSetup(t, { limits: { requestTimeoutMs: TIMEOUT_MS } });
  const conn = await holdConnection(t, port);
  const slow = dribble(
    conn.socket,
    'GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-Slow: '.padEnd(400, 'a'),
    50,
  );
  // Served while the slow connection is open, several times over.
  for (let i = 0; i < 3; i++) {
    assertServed(await normalRequest(port));
    await sleep(100);
  }
  const ms = await conn.closed(TIMEOUT_MS + 3000);
  await slow;
  assert408(conn.received());
  assert.ok(ms >= TIMEOUT_MS, `closed after ${ms} ms, before the timeout`);
  assertAgentSawOnlyNormal(agent, 3);
  const line = logLine(logs, 'MDP_ERR_REQUEST_TIMEOUT', 'request-timeout');
  assert.equal(line.parser, 'ERR_HTTP_REQUEST_TIMEOUT');
});

test('a connection that sends nothing at all: 408 and closed', async (t) => {
  const { agent, port } = await hostileSetup(t, { limits: { requestTimeoutMs: TIMEOUT_MS } });
  const conn = await holdConnection(t, port);
  const normal = normalRequest(port);
  const ms = await conn.closed(TIMEOUT_MS + 3000);
  assert408(conn.received());
  assert.ok(ms >= TIMEOUT_MS);
  assertServed(await normal);
  assertAgentSawOnlyNormal(agent);
});

test('a body that trickles in slower than the timeout: 408, closed, and the agent never sees it', async (t) => {
  const { agent, port, logs } = await hostileSetup(t, { limits: { requestTimeoutMs: TIMEOUT_MS } });
  const conn = await holdConnection(t, port);
  conn.socket.write('POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n');
  const slow = dribble(conn.socket, 'x'.repeat(100), 50);
  assertServed(await normalRequest(port));
  await conn.closed(TIMEOUT_MS + 3000);
  await slow;
  assert408(conn.received());
  assertAgentSawOnlyNormal(agent);
  const line = logLine(logs, 'MDP_ERR_REQUEST_TIMEOUT');
  assert.equal(line.msg, 'request');
  assert.equal(line.status, 408);
});

test('many slow connections at once do not stop a normal client', async (t) => {
  const { agent, port, proxy } = await hostileSetup(t, { limits: { requestTimeoutMs: TIMEOUT_MS } });
  const conns = await Promise.all(Array.from({ length: 50 }, () => holdConnection(t, port)));
  for (const c of conns) c.socket.write('GET / HTTP/1.1\r\n');
  assertServed(await normalRequest(port));
  await Promise.all(conns.map((c) => c.closed(TIMEOUT_MS + 3000)));
  for (const c of conns) assert408(c.received());
  assertAgentSawOnlyNormal(agent);
  // Every slow connection is gone from the proxy's count.
  for (let i = 0; i < 20 && proxy.connections > 0; i++) await sleep(25);
  assert.equal(proxy.connections, 0);
});
