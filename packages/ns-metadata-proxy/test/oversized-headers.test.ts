/*
 * Attack: a header block over the limit (one huge header, many small ones, or more header lines than
 * the proxy accepts), to exhaust memory or hide headers past what a filter looks at. Refused with 431.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_HEADER_LINES } from '../src/request-policy.js';
import {
  assertAgentSawOnlyNormal,
  assertRefused,
  assertServed,
  hostileSetup,
  logLine,
  normalRequest,
  rawRequest,
} from './helpers.js';

const TOO_LARGE = 'Request header fields too large.\n';
const LIMIT = 4096;

test('one header larger than the limit: 431 and closed, never forwarded', async (t) => {
  const { agent, port, logs } = await hostileSetup(t, { limits: { maxHeaderSize: LIMIT } });
  const [res, normal] = await Promise.all([
    rawRequest(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(LIMIT + 10)}\r\n\r\n`),
    normalRequest(port),
  ]);
  assertRefused(res, 431, TOO_LARGE);
  assertServed(normal);
  assertAgentSawOnlyNormal(agent);
  const line = logLine(logs, 'MDP_ERR_HEADERS_TOO_LARGE', 'header-block-too-large');
  assert.equal(line.parser, 'HPE_HEADER_OVERFLOW');
});

test('many small headers adding up over the limit: 431', async (t) => {
  const { agent, port } = await hostileSetup(t, { limits: { maxHeaderSize: LIMIT } });
  const many = Array.from({ length: 90 }, (_, i) => `X-H${i}: ${'b'.repeat(60)}`).join('\r\n');
  const [res, normal] = await Promise.all([
    rawRequest(port, `GET / HTTP/1.1\r\nHost: x\r\n${many}\r\n\r\n`),
    normalRequest(port),
  ]);
  assertRefused(res, 431, TOO_LARGE);
  assertServed(normal);
  assertAgentSawOnlyNormal(agent);
});

test('a request line longer than the limit: 431', async (t) => {
  const { agent, port } = await hostileSetup(t, { limits: { maxHeaderSize: LIMIT } });
  const res = await rawRequest(port, `GET /${'p'.repeat(LIMIT + 10)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  assertRefused(res, 431, TOO_LARGE);
  assert.equal(agent.started(), 0);
});

test(`more than ${MAX_HEADER_LINES} header lines within the byte limit: 431, not silently truncated`, async (t) => {
  const { agent, port, logs } = await hostileSetup(t);
  // The identity header sits past the line limit, where a truncating parser would not look.
  const lines = Array.from({ length: MAX_HEADER_LINES }, (_, i) => `X-${i}: v`).join('\r\n');
  const [res, normal] = await Promise.all([
    rawRequest(port, `GET / HTTP/1.1\r\nHost: x\r\n${lines}\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n`),
    normalRequest(port),
  ]);
  assertRefused(res, 431, TOO_LARGE, false);
  assertServed(normal);
  assertAgentSawOnlyNormal(agent);
  logLine(logs, 'MDP_ERR_HEADERS_TOO_LARGE', 'too-many-header-lines');
});

test(`exactly ${MAX_HEADER_LINES} header lines are accepted`, async (t) => {
  const { agent, port } = await hostileSetup(t);
  const lines = Array.from({ length: MAX_HEADER_LINES - 2 }, (_, i) => `X-${i}: v`).join('\r\n');
  const res = await rawRequest(port, `GET / HTTP/1.1\r\nHost: x\r\n${lines}\r\nConnection: close\r\n\r\n`);
  assert.equal(res.status, 200);
  assert.equal(agent.seen.length, 1);
});
