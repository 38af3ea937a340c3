/*
 * Attack: hold keep-alive connections open after a request, idle, to use up the proxy's connection
 * slots. An idle keep-alive connection is closed once the keep-alive timeout passes; a connection that
 * keeps sending requests stays open.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertServed, holdConnection, hostileSetup, NORMAL_PATH, normalRequest, sleep } from './helpers.js';

const KEEP_ALIVE_MS = 500;

test('an idle keep-alive connection is closed after the keep-alive timeout', async (t) => {
  const { agent, port, proxy } = await hostileSetup(t, {
    limits: { keepAliveTimeoutMs: KEEP_ALIVE_MS, requestTimeoutMs: 5000 },
  });
  const conn = await holdConnection(t, port);
  conn.socket.write(`GET ${NORMAL_PATH} HTTP/1.1\r\nHost: x\r\n\r\n`);
  const started = Date.now();
  // Served on another connection while this one idles.
  await sleep(100);
  assertServed(await normalRequest(port));
  const ms = await conn.closed(KEEP_ALIVE_MS + 3000);
  assert.match(conn.received(), /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(conn.received(), /\r\nConnection: keep-alive\r\n/i);
  assert.ok(Date.now() - started >= KEEP_ALIVE_MS - 50, `closed after ${ms} ms`);
  assert.equal(agent.seen.length, 2);
  for (let i = 0; i < 20 && proxy.connections > 0; i++) await sleep(25);
  assert.equal(proxy.connections, 0);
});

test('a keep-alive connection in use stays open across requests', async (t) => {
  const { agent, port } = await hostileSetup(t, {
    limits: { keepAliveTimeoutMs: KEEP_ALIVE_MS, requestTimeoutMs: 5000 },
  });
  const conn = await holdConnection(t, port);
  for (let i = 0; i < 5; i++) {
    conn.socket.write(`GET ${NORMAL_PATH}?n=${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await sleep(KEEP_ALIVE_MS / 2);
  }
  assert.equal(conn.socket.destroyed, false);
  assert.equal(conn.received().match(/HTTP\/1\.1 200 OK/g)?.length, 5);
  assert.equal(agent.seen.length, 5);
  await conn.closed(KEEP_ALIVE_MS + 3000);
});
