/*
 * Attack: use the metadata proxy as a forward proxy. An absolute-form target (`GET http://other/...`),
 * a scheme-relative `//other/...` or asterisk-form target must be refused with 400, and the proxy must
 * never open a connection to anything but the agent, whatever the target or Host header says.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { type TestContext, test } from 'node:test';
import {
  assertAgentSawOnlyNormal,
  assertRefused,
  assertServed,
  holdConnection,
  hostileSetup,
  logLine,
  NORMAL_PATH,
  normalRequest,
  rawRequest,
} from './helpers.js';

const REFUSAL = 'Only origin-form request targets are accepted.\n';

/** A TCP listener standing for "anything but the agent": it counts connections. */
async function decoy(t: TestContext): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server: Server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { port: address.port, connections: () => connections };
}

for (const [name, target] of [
  ['absolute-form http target', (p: number) => `http://127.0.0.1:${p}/latest/meta-data/`],
  ['absolute-form https target', (p: number) => `https://127.0.0.1:${p}/`],
  ['absolute-form target with a metadata path', () => `http://169.254.169.254${NORMAL_PATH}`],
  ['scheme-relative target', (p: number) => `//127.0.0.1:${p}/x`],
] as const) {
  test(`${name}: 400, the proxy talks to nobody, a normal request is served meanwhile`, async (t) => {
    const other = await decoy(t);
    const { agent, port, logs } = await hostileSetup(t);
    const [res, normal] = await Promise.all([
      rawRequest(port, `GET ${target(other.port)} HTTP/1.1\r\nHost: 127.0.0.1:${other.port}\r\n\r\n`),
      normalRequest(port),
    ]);
    assertRefused(res, 400, REFUSAL, false);
    assertServed(normal);
    assertAgentSawOnlyNormal(agent);
    assert.equal(other.connections(), 0);
    const line = logLine(logs, 'MDP_ERR_ABSOLUTE_TARGET', 'absolute-form-target');
    assert.equal(line.status, 400);
    assert.equal(line.level, 'warn');
  });
}

test('asterisk-form target (OPTIONS *): 400 and never forwarded', async (t) => {
  const { agent, port } = await hostileSetup(t);
  const [res, normal] = await Promise.all([
    rawRequest(port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    normalRequest(port),
  ]);
  assertRefused(res, 400, REFUSAL);
  assertServed(normal);
  assertAgentSawOnlyNormal(agent);
});

test('a Host header naming another server changes nothing: the request still goes only to the agent', async (t) => {
  const other = await decoy(t);
  const { agent, port } = await hostileSetup(t);
  const res = await rawRequest(
    port,
    `GET ${NORMAL_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${other.port}\r\nConnection: close\r\n\r\n`,
  );
  assertServed(res);
  assert.equal(agent.seen.length, 1);
  assert.equal(other.connections(), 0);
});

test('the refusal keeps a keep-alive connection usable: the next request on it is served', async (t) => {
  const { agent, port } = await hostileSetup(t);
  const conn = await holdConnection(t, port);
  conn.socket.write(
    `GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\nGET ${NORMAL_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
  );
  await conn.closed(5000);
  const text = conn.received();
  assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.ok(text.includes(`\r\n\r\n${REFUSAL}HTTP/1.1 200 OK\r\n`), text);
  assert.equal(agent.seen.length, 1);
  assert.equal(agent.seen[0]!.url, NORMAL_PATH);
});
