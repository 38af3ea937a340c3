/*
 * Attack: a request in another HTTP version (0.9 without headers, "HTTP/2.0" or "HTTP/1.2" in the
 * request line, the HTTP/2 connection preface) that one hop may frame differently from the next.
 * Only HTTP/1.0 and HTTP/1.1 are forwarded; everything else gets 400.
 */
import { test } from 'node:test';
import {
  assertAgentSawOnlyNormal,
  assertRefused,
  assertServed,
  BAD_REQUEST,
  hostileSetup,
  logLine,
  normalRequest,
  rawRequest,
} from './helpers.js';

for (const [name, bytes, reason] of [
  ['HTTP/0.9 request line', 'GET /latest/meta-data/\r\n\r\n', 'http-version'],
  ['HTTP/2.0 in an HTTP/1 request line', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 'http-version'],
  ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: x\r\n\r\n', 'invalid-version'],
  ['HTTP/2 connection preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'http2-preface'],
  ['bare LF line endings', 'GET / HTTP/1.1\nHost: x\n\n', 'invalid-version'],
] as const) {
  test(`${name}: 400, never forwarded, others served meanwhile`, async (t) => {
    const { agent, port, logs } = await hostileSetup(t);
    const [res, normal] = await Promise.all([rawRequest(port, bytes), normalRequest(port)]);
    assertRefused(res, 400, BAD_REQUEST);
    assertServed(normal);
    assertAgentSawOnlyNormal(agent);
    logLine(logs, 'MDP_ERR_BAD_REQUEST', reason);
  });
}

test('HTTP/1.0 is still served', async (t) => {
  const { agent, port } = await hostileSetup(t);
  const res = await rawRequest(port, 'GET /latest/meta-data/instance-id HTTP/1.0\r\nHost: x\r\n\r\n');
  assertServed(res);
  assertAgentSawOnlyNormal(agent);
});
