/*
 * Attack: request smuggling with both Content-Length and Transfer-Encoding (CL.TE / TE.CL), or with a
 * Transfer-Encoding that one hop reads differently from the next. Whatever the order, spelling or
 * HTTP version, the request is refused with 400 and the connection closed, so no hidden second request
 * can ride along to the agent.
 */
import assert from 'node:assert/strict';
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

/** The smuggled request a front end that trusts the other header would pass on. */
const SMUGGLED = 'GET /openstack/latest/password HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.99\r\n\r\n';

const SHAPES: ReadonlyArray<readonly [string, string, string]> = [
  [
    'CL.TE: Content-Length then Transfer-Encoding',
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'content-length-with-transfer-encoding',
  ],
  [
    'TE.CL: Transfer-Encoding then Content-Length',
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    'content-length-with-transfer-encoding',
  ],
  [
    'CL.TE with the Transfer-Encoding header in upper case',
    `POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 6\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'content-length-with-transfer-encoding',
  ],
  [
    'TE obfuscated as a list ending in something else',
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'invalid-transfer-encoding',
  ],
  [
    'TE with an unknown coding',
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'invalid-transfer-encoding',
  ],
  [
    'TE given twice',
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'invalid-transfer-encoding',
  ],
  [
    'TE with a space before the colon',
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'invalid-header',
  ],
  [
    'TE with a vertical tab before the value',
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'invalid-header',
  ],
  [
    'TE on an HTTP/1.0 request',
    `POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'transfer-encoding-in-http-1.0',
  ],
];

for (const [name, bytes, reason] of SHAPES) {
  test(`${name}: 400 and closed, nothing reaches the agent, others are served meanwhile`, async (t) => {
    const { agent, port, logs } = await hostileSetup(t);
    const [res, normal] = await Promise.all([rawRequest(port, bytes), normalRequest(port)]);
    assertRefused(res, 400, BAD_REQUEST);
    assertServed(normal);
    assertAgentSawOnlyNormal(agent);
    const line = logLine(logs, 'MDP_ERR_BAD_REQUEST', reason);
    assert.equal(line.level, 'warn');
  });
}

test('the parser error code is logged next to the reason', async (t) => {
  const { port, logs } = await hostileSetup(t);
  await rawRequest(port, SHAPES[0]![1]);
  const line = logLine(logs, 'MDP_ERR_BAD_REQUEST', 'content-length-with-transfer-encoding');
  assert.equal(line.parser, 'HPE_INVALID_TRANSFER_ENCODING');
  assert.match(String(line.parserReason), /Content-Length/);
  assert.equal(line.src, '127.0.0.1');
});
