/*
 * Attack: two Content-Length headers (equal or not), hoping one hop uses the first and the next hop the
 * last, so that the rest of the body becomes a second request. Refused with 400, connection closed.
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

const SMUGGLED = 'GET /openstack/latest/password HTTP/1.1\r\nHost: x\r\n\r\n';

for (const [name, headers] of [
  ['different values', `Content-Length: 4\r\nContent-Length: ${4 + SMUGGLED.length}`],
  ['equal values', 'Content-Length: 4\r\nContent-Length: 4'],
  ['different case', `content-length: 4\r\nCONTENT-LENGTH: ${4 + SMUGGLED.length}`],
  ['separated by other headers', `Content-Length: 4\r\nAccept: */*\r\nContent-Length: 4`],
] as const) {
  test(`duplicate Content-Length, ${name}: 400 and closed, never forwarded`, async (t) => {
    const { agent, port, logs } = await hostileSetup(t);
    const [res, normal] = await Promise.all([
      rawRequest(port, `POST / HTTP/1.1\r\nHost: x\r\n${headers}\r\n\r\nabcd${SMUGGLED}`),
      normalRequest(port),
    ]);
    assertRefused(res, 400, BAD_REQUEST);
    assertServed(normal);
    assertAgentSawOnlyNormal(agent);
    logLine(logs, 'MDP_ERR_BAD_REQUEST', 'duplicate-content-length');
  });
}
