/*
 * Attack: a valid request followed, on the same connection, by bytes that are not a valid request
 * (or by a request hidden after `Connection: close`). The valid request is answered in full first;
 * then the rest is refused with 400 and the connection closed, or, after `Connection: close`, ignored.
 * The agent sees only the valid request, and no answer is ever interleaved with another.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { holdConnection, hostileSetup, logLine, NORMAL_PATH } from './helpers.js';

test('valid request then garbage, while the agent is slow: the answer comes first, then 400', async (t) => {
  const { agent, port, logs } = await hostileSetup(t);
  agent.respond = (_req, res, seen) => {
    setTimeout(() => res.end(JSON.stringify({ url: seen.url })), 200);
  };
  const conn = await holdConnection(t, port);
  conn.socket.write(`GET ${NORMAL_PATH} HTTP/1.1\r\nHost: x\r\n\r\nG@RBAGE / HTTP/1.1\r\nHost: x\r\n\r\n`);
  await conn.closed(5000);
  const text = conn.received();
  const first = text.indexOf('HTTP/1.1 200 OK');
  const second = text.indexOf('HTTP/1.1 400 Bad Request');
  assert.ok(first === 0, text);
  assert.ok(second > first, text);
  assert.ok(text.includes(`{"url":"${NORMAL_PATH}"}HTTP/1.1 400`), 'the 400 comes after the whole answer');
  assert.equal(agent.seen.length, 1);
  assert.equal(agent.started(), 1);
  logLine(logs, 'MDP_ERR_BAD_REQUEST', 'invalid-method');
});

test('a request hidden after Connection: close is neither forwarded nor answered', async (t) => {
  const { agent, port, logs } = await hostileSetup(t);
  const conn = await holdConnection(t, port);
  conn.socket.write(
    `GET ${NORMAL_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /openstack/latest/password HTTP/1.1\r\nHost: x\r\n\r\n`,
  );
  await conn.closed(5000);
  assert.equal(conn.received().match(/HTTP\/1\.1 /g)?.length, 1);
  assert.match(conn.received(), /^HTTP\/1\.1 200 OK/);
  assert.deepEqual(
    agent.seen.map((s) => s.url),
    [NORMAL_PATH],
  );
  logLine(logs, 'MDP_ERR_BAD_REQUEST', 'data-after-connection-close');
});

test('pipelined valid requests are answered in order, each once', async (t) => {
  const { agent, port } = await hostileSetup(t);
  const conn = await holdConnection(t, port);
  const reqs = [1, 2, 3].map((i) => `GET ${NORMAL_PATH}?n=${i} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
  conn.socket.write(`${reqs}GET ${NORMAL_PATH}?n=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  await conn.closed(5000);
  const order = [...conn.received().matchAll(/n=(\d)/g)].map((m) => m[1]);
  assert.deepEqual(order, ['1', '2', '3', '4']);
  assert.equal(agent.seen.length, 4);
});
