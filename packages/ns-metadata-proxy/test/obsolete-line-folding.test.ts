/*
 * Attack: obsolete line folding (a header line starting with a space or tab continues the previous
 * one, RFC 9112 §5.2). One hop joining the lines and another not can disagree on a header's value, e.g.
 * sneak an identity header past a filter. Refused with 400, connection closed.
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

for (const [name, headers] of [
  ['space continuation', 'Host: x\r\nX-Custom: a\r\n  b'],
  ['tab continuation', 'Host: x\r\nX-Custom: a\r\n\tb'],
  ['folded identity header', 'Host: x\r\nAccept: */*\r\n X-Forwarded-For: 6.6.6.6'],
  ['folded Transfer-Encoding', 'Host: x\r\nX-Custom: a\r\n Transfer-Encoding: chunked'],
  ['continuation as the first header line', ' Host: x'],
] as const) {
  test(`obsolete line folding, ${name}: 400 and closed, never forwarded`, async (t) => {
    const { agent, port, logs } = await hostileSetup(t);
    const [res, normal] = await Promise.all([
      rawRequest(port, `GET / HTTP/1.1\r\n${headers}\r\n\r\n`),
      normalRequest(port),
    ]);
    assertRefused(res, 400, BAD_REQUEST);
    assertServed(normal);
    assertAgentSawOnlyNormal(agent);
    logLine(logs, 'MDP_ERR_BAD_REQUEST', 'obsolete-line-folding');
  });
}
