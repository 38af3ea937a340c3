/*
 * Attack: a request body over the limit, declared or chunked, to exhaust memory in the proxy or the
 * agent. Refused with 413 and the connection closed; the agent never sees any of it, because bodies are
 * read whole, within the limit, before the agent is contacted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertAgentSawOnlyNormal,
  assertRefused,
  assertServed,
  holdConnection,
  hostileSetup,
  logLine,
  normalRequest,
  rawRequest,
} from './helpers.js';

const TOO_LARGE = 'Request body too large.\n';
const LIMIT = 1000;

test('declared Content-Length over the limit: 413 at once, before a byte of the body is sent', async (t) => {
  const { agent, port, logs } = await hostileSetup(t, { limits: { maxBodySize: LIMIT } });
  const conn = await holdConnection(t, port);
  const normal = normalRequest(port);
  conn.socket.write(
    `POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`,
  );
  await conn.closed(3000);
  assert.match(conn.received(), /^HTTP\/1\.1 413 /);
  assert.ok(conn.received().endsWith(`\r\n\r\n${TOO_LARGE}`));
  assert.match(conn.received(), /\r\nconnection: close\r\n/i);
  assertServed(await normal);
  assertAgentSawOnlyNormal(agent);
  const line = logLine(logs, 'MDP_ERR_BODY_TOO_LARGE', 'declared-length');
  assert.equal(line.status, 413);
});

test('chunked body growing over the limit: 413 and closed, nothing forwarded', async (t) => {
  const { agent, port, logs } = await hostileSetup(t, { limits: { maxBodySize: LIMIT } });
  const chunk = 'y'.repeat(400);
  const chunks = Array.from({ length: 4 }, () => `190\r\n${chunk}\r\n`).join('');
  const [res, normal] = await Promise.all([
    rawRequest(
      port,
      `POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`,
    ),
    normalRequest(port),
  ]);
  assertRefused(res, 413, TOO_LARGE);
  assertServed(normal);
  assertAgentSawOnlyNormal(agent);
  logLine(logs, 'MDP_ERR_BODY_TOO_LARGE', 'body-grew-over-limit');
});

test('a chunked body that never finishes within the limit is never half-forwarded', async (t) => {
  const { agent, port } = await hostileSetup(t, {
    limits: { maxBodySize: LIMIT, requestTimeoutMs: 500 },
  });
  const conn = await holdConnection(t, port);
  conn.socket.write(
    'POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
  );
  await conn.closed(5000);
  assert.match(conn.received(), /^HTTP\/1\.1 408 /);
  assert.equal(agent.started(), 0);
});

test('a body within the limit still reaches the agent, chunked or not', async (t) => {
  const { agent, port } = await hostileSetup(t, { limits: { maxBodySize: LIMIT } });
  const body = 'z'.repeat(LIMIT);
  const a = await rawRequest(
    port,
    `POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: ${LIMIT}\r\nConnection: close\r\n\r\n${body}`,
  );
  const b = await rawRequest(
    port,
    `POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3e8\r\n${body}\r\n0\r\n\r\n`,
  );
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  assert.deepEqual(
    agent.seen.map((s) => [s.url, s.body.length, s.headers['transfer-encoding']]),
    [
      ['/a', LIMIT, undefined],
      ['/b', LIMIT, undefined],
    ],
  );
});

test('a malformed chunk is refused with 400 and the agent sees nothing', async (t) => {
  const { agent, port, logs } = await hostileSetup(t);
  const [res, normal] = await Promise.all([
    rawRequest(
      port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n',
    ),
    normalRequest(port),
  ]);
  assertRefused(res, 400, 'Bad request.\n');
  assertServed(normal);
  assertAgentSawOnlyNormal(agent);
  const line = logLine(logs, 'MDP_ERR_BAD_REQUEST', 'invalid-chunk');
  assert.equal(line.msg, 'request');
  assert.equal(line.status, 400);
});
