/*
 * Attack: slow read. Ask for a large answer and never read it, so the proxy holds the agent connection
 * and buffers the answer forever. The proxy stops reading from the agent while the instance does not
 * read (backpressure: memory stays bounded), and once the instance has read nothing for the client
 * timeout ([metadata_haproxy] timeout_client) it gives up: the instance connection is closed and the
 * agent connection freed. Others are served meanwhile.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertServed, holdConnection, hostileSetup, NORMAL_PATH, normalRequest, sleep } from './helpers.js';

test('a client that never reads a large answer is cut after the client timeout; memory stays bounded', async (t) => {
  const { agent, port, proxy, logs } = await hostileSetup(t, { limits: { clientTimeoutMs: 500 } });
  const big = Buffer.alloc(32 * 1024 * 1024, 'x');
  let agentClosed = false;
  agent.respond = (req, res, seen) => {
    if (seen.url !== '/big') {
      res.end(JSON.stringify({ url: seen.url }));
      return;
    }
    req.socket.on('close', () => {
      agentClosed = true;
    });
    res.writeHead(200, { 'content-length': big.length });
    res.end(big);
  };
  const conn = await holdConnection(t, port);
  conn.socket.pause();
  conn.socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(300);
  const before = process.memoryUsage().rss;
  assertServed(await normalRequest(port));
  // The proxy lets go of both sides (the paused client cannot see the close until it reads again).
  for (let i = 0; i < 150 && (!agentClosed || proxy.connections > 0); i++) await sleep(20);
  assert.ok(agentClosed, 'the agent connection was not freed');
  assert.equal(proxy.connections, 0, 'the instance connection was not closed');
  assert.equal(proxy.handler.inFlight, 0);
  conn.socket.resume();
  await conn.closed(5000);
  assert.ok(conn.received().length < big.length, 'the whole answer went out');
  assert.ok(process.memoryUsage().rss - before < 64 * 1024 * 1024, 'the answer was buffered');
  const line = logs.lines().find((l) => l.msg === 'request' && l.path === '/big');
  assert.equal(line?.code, 'client_timeout');
  assert.equal(line?.reason, 'client-not-reading');
  assert.equal(line?.level, 'warn');
  assert.equal(line?.aborted, true);
  assert.ok(agent.seen.some((s) => s.url === NORMAL_PATH));
});
