/*
 * The one retry (agent-retry.ts): an idempotent request whose agent connection is closed before any
 * answer is sent once more on a fresh connection; a POST never is, and always goes on a connection of its
 * own; a second close is reported (502), not retried again. Real proxy, real UNIX socket.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { needsFreshConnection, retryOnFreshConnection } from '../src/agent-retry.js';
import { NORMAL_PATH, startFakeAgent, startProxy } from './helpers.js';

const err = (code: string) => Object.assign(new Error(code), { code });

test('rules: idempotent methods after a close or reset before any answer, nothing else', () => {
  for (const m of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']) {
    assert.equal(retryOnFreshConnection(m, err('ECONNRESET')), true, m);
    assert.equal(retryOnFreshConnection(m, err('EPIPE')), true, m);
    assert.equal(needsFreshConnection(m), false, m);
  }
  for (const m of ['POST', 'PATCH', 'CONNECT', 'get']) {
    assert.equal(retryOnFreshConnection(m, err('ECONNRESET')), false, m);
    assert.equal(needsFreshConnection(m), true, m);
  }
  // Not a close before answering: unreachable (503 at once), too slow (504), a bad answer (502).
  for (const code of ['ENOENT', 'ECONNREFUSED', 'MDP_AGENT_TIMEOUT', 'HPE_INVALID_CONSTANT'])
    assert.equal(retryOnFreshConnection('GET', err(code)), false, code);
  assert.equal(retryOnFreshConnection('GET', undefined), false);
});

/** A fake agent that closes the connection, unanswered, for the first `closes` requests it reads. */
async function closingAgent(t: import('node:test').TestContext, closes: number) {
  const agent = await startFakeAgent(t);
  const sockets: Socket[] = [];
  agent.server.on('connection', (s: Socket) => sockets.push(s));
  let left = closes;
  const answer = agent.respond;
  agent.respond = (req, res, seen) => {
    if (left > 0) {
      left--;
      req.socket.destroy();
      return;
    }
    answer(req, res, seen);
  };
  return { agent, sockets };
}

async function fetchVia(port: number, method: string, body?: string) {
  const res = await fetch(`http://127.0.0.1:${port}${NORMAL_PATH}`, {
    method,
    ...(body !== undefined ? { body } : {}),
  });
  return { status: res.status, text: await res.text() };
}

test('a GET whose connection the agent closes unanswered is answered through a fresh connection', async (t) => {
  const { agent, sockets } = await closingAgent(t, 1);
  const { port, logs } = await startProxy(t, { socketPath: agent.socketPath });
  const r = await fetchVia(port, 'GET');
  assert.equal(r.status, 200, r.text);
  assert.equal(agent.seen.length, 2, 'sent twice: the closed try and the retry');
  assert.equal(sockets.length, 2, 'the retry came on a connection of its own');
  assert.equal(agent.seen[1]!.headers.connection, 'close');
  const line = logs.lines().find((l) => l.msg === 'request');
  assert.equal(line?.status, 200);
  assert.equal(line?.agentRetry, 'ECONNRESET', 'the log line says it took a retry');
});

test('only once: a GET closed twice is a 502', async (t) => {
  const { agent } = await closingAgent(t, 2);
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const r = await fetchVia(port, 'GET');
  assert.equal(r.status, 502);
  assert.equal(agent.seen.length, 2);
});

test('a POST is never sent twice, and each goes on a connection of its own', async (t) => {
  const { agent, sockets } = await closingAgent(t, 1);
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const failed = await fetchVia(port, 'POST', 'secret-password-1');
  assert.equal(failed.status, 502);
  assert.equal(agent.seen.length, 1, 'not repeated');
  for (let i = 2; i <= 3; i++) assert.equal((await fetchVia(port, 'POST', `pw-${i}`)).status, 200);
  assert.equal(sockets.length, 3, 'one connection per POST');
  assert.deepEqual(
    agent.seen.map((s) => s.headers.connection),
    ['close', 'close', 'close'],
  );
  // GETs keep sharing the pool.
  for (let i = 0; i < 3; i++) assert.equal((await fetchVia(port, 'GET')).status, 200);
  assert.equal(sockets.length, 4);
});
