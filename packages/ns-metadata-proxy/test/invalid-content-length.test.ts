/*
 * Attack: a Content-Length that parsers read differently (sign, hex, list, spaces, overflow, empty).
 * Only a plain run of digits is a length; everything else is refused with 400 and the connection closed.
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

for (const value of ['-1', '+4', '0x4', '4a', '4, 4', '4 4', '4.0', '', '99999999999999999999999']) {
  test(`Content-Length '${value}': 400 and closed, never forwarded`, async (t) => {
    const { agent, port, logs } = await hostileSetup(t);
    const [res, normal] = await Promise.all([
      rawRequest(port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${value}\r\n\r\nabcd`),
      normalRequest(port),
    ]);
    assertRefused(res, 400, BAD_REQUEST);
    assertServed(normal);
    assertAgentSawOnlyNormal(agent);
    logLine(logs, 'MDP_ERR_BAD_REQUEST', 'invalid-content-length');
  });
}
