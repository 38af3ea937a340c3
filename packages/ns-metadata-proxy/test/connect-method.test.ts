/*
 * Attack: CONNECT, to open a tunnel through the metadata proxy to anywhere. Refused with 400 and the
 * connection closed; nothing is tunnelled, the bytes after the CONNECT head are never interpreted, and
 * the proxy never connects to the named target.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import {
  assertAgentSawOnlyNormal,
  assertRefused,
  assertServed,
  hostileSetup,
  logLine,
  normalRequest,
  rawRequest,
} from './helpers.js';

test('CONNECT: 400, connection closed, no tunnel, a normal request is served meanwhile', async (t) => {
  let connections = 0;
  const target = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => target.close(() => resolve())));
  const targetPort = (target.address() as { port: number }).port;

  const { agent, port, logs } = await hostileSetup(t);
  const [res, normal] = await Promise.all([
    rawRequest(
      port,
      `CONNECT 127.0.0.1:${targetPort} HTTP/1.1\r\nHost: 127.0.0.1:${targetPort}\r\n\r\n` +
        // What a client would send into the tunnel: must never be parsed as a request of ours.
        'GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n',
    ),
    normalRequest(port),
  ]);
  assertRefused(res, 400, 'Only origin-form request targets are accepted.\n');
  assertServed(normal);
  assertAgentSawOnlyNormal(agent);
  assert.equal(connections, 0);
  const line = logLine(logs, 'MDP_ERR_ABSOLUTE_TARGET', 'connect-method');
  assert.equal(line.method, 'CONNECT');
  assert.equal(line.target, `127.0.0.1:${targetPort}`);
});

test('CONNECT in origin form or to the metadata address is refused just the same', async (t) => {
  const { agent, port } = await hostileSetup(t);
  for (const target of ['/', '169.254.169.254:80', '[::1]:22']) {
    const res = await rawRequest(port, `CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.ok(res.status === 400, `${target}: ${res.head}`);
    assert.equal(res.closed, true);
  }
  assert.equal(agent.started(), 0);
});
