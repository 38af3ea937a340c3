/*
 * MetadataProxy.close(): stop accepting, close idle keep-alive connections at once, give connections not
 * answered yet UNANSWERED_GRACE_MS to send their request (then close silent ones), let requests in flight
 * finish with `Connection: close`, and cut whatever is left at the deadline.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UNANSWERED_GRACE_MS } from '../src/proxy.js';
import { holdConnection, NORMAL_PATH, sleep, startFakeAgent, startProxy } from './helpers.js';

test('close(): idle connections closed at once, silent ones after the grace, a request in flight finishes', async (t) => {
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
  await idle.closed(200);
  assert.ok(Date.now() - started < 200);
  await silent.closed(UNANSWERED_GRACE_MS + 1000);
  assert.ok(Date.now() - started >= UNANSWERED_GRACE_MS - 20, 'the silent connection got its grace');
  await busy.closed(2000);
  assert.match(busy.received(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*[Cc]onnection: close\r\n[\s\S]*\r\nlate$/);
  await closing;
  for (let i = 0; i < 20 && proxy.connections > 0; i++) await sleep(10);
  assert.equal(proxy.connections, 0);
});

test('close(): a request sent on a fresh connection just after the stop began is answered, then closed', async (t) => {
  const agent = await startFakeAgent(t);
  const { port, proxy } = await startProxy(t, { socketPath: agent.socketPath });
  // Accepted before the stop, its request arriving after it started: what a restart under load meets.
  const fresh = await holdConnection(t, port);
  await sleep(50);
  const closing = proxy.close(5000);
  await sleep(100);
  fresh.socket.write(`GET ${NORMAL_PATH} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await fresh.closed(3000);
  assert.match(fresh.received(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*[Cc]onnection: close\r\n/);
  await closing;
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
