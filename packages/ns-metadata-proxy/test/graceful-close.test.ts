/*
 * MetadataProxy.close(): stop accepting, close connections with nothing in progress at once (idle
 * keep-alive, or opened and silent), let requests in flight finish, and cut whatever is left at the
 * deadline.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { holdConnection, NORMAL_PATH, sleep, startFakeAgent, startProxy } from './helpers.js';

test('close(): idle and silent connections closed at once, a request in flight finishes', async (t) => {
  const agent = await startFakeAgent(t);
  agent.respond = (_req, res) => {
    setTimeout(() => res.end('late'), 300);
  };
  const { port, proxy } = await startProxy(t, { socketPath: agent.socketPath });
  const silent = await holdConnection(t, port);
  const idle = await holdConnection(t, port);
  idle.socket.write('GET /warm HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(400);
  const busy = await holdConnection(t, port);
  busy.socket.write(`GET ${NORMAL_PATH} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await sleep(50);
  const started = Date.now();
  const closing = proxy.close(5000);
  await Promise.all([silent.closed(200), idle.closed(200)]);
  assert.ok(Date.now() - started < 200);
  await busy.closed(2000);
  assert.match(busy.received(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nlate$/);
  await closing;
  for (let i = 0; i < 20 && proxy.connections > 0; i++) await sleep(10);
  assert.equal(proxy.connections, 0);
});

test('close(): a request still in flight at the deadline is cut', async (t) => {
  const agent = await startFakeAgent(t);
  agent.respond = () => {
    /* never answers */
  };
  const { port, proxy } = await startProxy(t, { socketPath: agent.socketPath });
  const busy = await holdConnection(t, port);
  busy.socket.write(`GET ${NORMAL_PATH} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await sleep(50);
  const started = Date.now();
  await proxy.close(300);
  const ms = await busy.closed(2000);
  assert.ok(ms > 0);
  assert.ok(Date.now() - started >= 250 && Date.now() - started < 1500, `${Date.now() - started} ms`);
  assert.equal(busy.received(), '');
});
