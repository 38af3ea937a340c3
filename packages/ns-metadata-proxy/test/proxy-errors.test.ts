/*
 * The proxy's own answers when the agent fails (DECISIONS.md, "Our own errors"): socket missing 503 at
 * once, too slow 504, closed early 502; and refusals of targets that would make it a forward proxy.
 * Each comes with a plain-text body and a stable code in the log line.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { rawRequest, startFakeAgent, startProxy, tempDir } from './helpers.js';

const GET =
  'GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n';

test('agent socket missing: 503 at once, with the code in the log', async (t) => {
  const { port, logs } = await startProxy(t, { socketPath: join(tempDir(t), 'missing.sock') });
  const started = Date.now();
  const res = await rawRequest(port, GET);
  assert.equal(res.status, 503);
  assert.equal(res.headers['content-type'], 'text/plain; charset=UTF-8');
  assert.equal(res.body.toString(), 'No server is available to handle this request.\n');
  assert.ok(Date.now() - started < 2000, 'answered at once');
  const line = logs.lines().find((l) => l.msg === 'request');
  assert.equal(line?.code, 'MDP_ERR_AGENT_UNREACHABLE');
  assert.equal(line?.status, 503);
  assert.equal(line?.network, 'net-1');
});

test('agent too slow: 504 after the upstream timeout', async (t) => {
  const agent = await startFakeAgent(t);
  agent.respond = () => {
    /* never answers */
  };
  const { port, logs } = await startProxy(t, {
    socketPath: agent.socketPath,
    limits: { upstreamTimeoutMs: 300 },
  });
  const res = await rawRequest(port, GET);
  assert.equal(res.status, 504);
  assert.equal(res.body.toString(), "The server didn't respond in time.\n");
  assert.equal(logs.lines().find((l) => l.msg === 'request')?.code, 'MDP_ERR_AGENT_TIMEOUT');
});

test('agent closes without answering: 502', async (t) => {
  const agent = await startFakeAgent(t);
  agent.respond = (req) => req.socket.destroy();
  const { port, logs } = await startProxy(t, { socketPath: agent.socketPath });
  const res = await rawRequest(port, GET);
  assert.equal(res.status, 502);
  assert.equal(res.body.toString(), 'The server returned an invalid or incomplete response.\n');
  assert.equal(logs.lines().find((l) => l.msg === 'request')?.code, 'MDP_ERR_AGENT_BAD_RESPONSE');
});

test('agent dies mid-answer: the instance connection is closed, not left hanging', async (t) => {
  const agent = await startFakeAgent(t);
  agent.respond = (req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('partial');
    setTimeout(() => req.socket.destroy(), 20);
  };
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const res = await rawRequest(port, GET);
  assert.equal(res.status, 200);
  assert.equal(res.closed, true);
  assert.ok(res.body.length < 1000);
});

test('absolute-form target is refused with 400 and never reaches the agent', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const res = await rawRequest(
    port,
    'GET http://10.1.2.3/secret HTTP/1.1\r\nHost: 10.1.2.3\r\nConnection: close\r\n\r\n',
  );
  assert.equal(res.status, 400);
  assert.equal(res.body.toString(), 'Only origin-form request targets are accepted.\n');
  assert.equal(agent.seen.length, 0);
});

test('CONNECT is refused with 400 and the connection closed', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const res = await rawRequest(port, 'CONNECT 10.1.2.3:443 HTTP/1.1\r\nHost: 10.1.2.3:443\r\n\r\n');
  assert.equal(res.status, 400);
  assert.equal(res.closed, true);
  assert.equal(agent.seen.length, 0);
});

test('a body over the limit is refused with 413 before the agent sees it', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, { socketPath: agent.socketPath, limits: { maxBodySize: 100 } });
  const body = 'x'.repeat(101);
  const res = await rawRequest(
    port,
    `POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  assert.equal(res.status, 413);
  assert.equal(agent.seen.length, 0);
});

test('a chunked body that grows over the limit is refused with 413', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, { socketPath: agent.socketPath, limits: { maxBodySize: 100 } });
  const chunk = 'y'.repeat(60);
  const res = await rawRequest(
    port,
    `POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n${chunk}\r\n3c\r\n${chunk}\r\n0\r\n\r\n`,
  );
  assert.equal(res.status, 413);
  assert.equal(agent.seen.filter((s) => s.body.length > 100).length, 0);
});

test('the answer is relayed byte-exact: status, headers, binary body; HEAD keeps the length', async (t) => {
  const agent = await startFakeAgent(t);
  const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const big = Buffer.alloc(2 * 1024 * 1024, 7);
  agent.respond = (req, res) => {
    const body = req.url === '/big' ? big : binary;
    res.writeHead(req.url === '/created' ? 201 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': body.length,
      'x-custom': 'kept',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const a = await rawRequest(port, 'GET /bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(a.status, 200);
  assert.deepEqual(a.body, binary);
  assert.equal(a.headers['x-custom'], 'kept');
  const b = await rawRequest(port, 'GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(b.body.length, big.length);
  assert.ok(b.body.equals(big));
  const c = await rawRequest(port, 'HEAD /bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(c.headers['content-length'], '256');
  assert.equal(c.body.length, 0);
  const d = await rawRequest(port, 'GET /created HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(d.status, 201);
});

test('a request body is forwarded verbatim with method and query', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const body = 'c2VjcmV0cGFzc3dvcmQ=';
  const res = await rawRequest(
    port,
    `POST /openstack/latest/password?x=1&y=2 HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  assert.equal(res.status, 200);
  assert.equal(agent.seen[0]!.method, 'POST');
  assert.equal(agent.seen[0]!.url, '/openstack/latest/password?x=1&y=2');
  assert.equal(agent.seen[0]!.body.toString(), body);
});

test('the agent connection pool is reused across requests (keep-alive on the socket hop)', async (t) => {
  const agent = await startFakeAgent(t);
  const sockets = new Set<unknown>();
  agent.server.on('connection', (s) => sockets.add(s));
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  for (let i = 0; i < 20; i++) {
    const res = await rawRequest(port, GET);
    assert.equal(res.status, 200);
  }
  assert.ok(sockets.size <= 2, `expected pooled connections, saw ${sockets.size}`);
});

test('Expect: 100-continue is answered by the proxy and not passed on to the agent', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const body = 'c2VjcmV0cGFzc3dvcmQ=';
  const res = await rawRequest(
    port,
    `POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  assert.match(res.head, /^HTTP\/1\.1 100 Continue/);
  assert.match(res.body.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(agent.seen.length, 1);
  assert.equal(agent.seen[0]!.body.toString(), body);
  assert.equal(agent.seen[0]!.headers.expect, undefined);
});

test('agent fails before answering: 502 and the instance connection is closed', async (t) => {
  const agent = await startFakeAgent(t);
  agent.respond = (req) => req.socket.destroy();
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  // Keep-alive request: the proxy still closes after a 502.
  const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(res.status, 502);
  assert.equal(res.headers.connection, 'close');
  assert.equal(res.closed, true);
});

test('the instance leaving while the agent is slow frees the agent connection at once', async (t) => {
  const agent = await startFakeAgent(t);
  let aborted = 0;
  agent.respond = (req) => {
    req.socket.on('close', () => aborted++);
  };
  const { port, proxy, logs } = await startProxy(t, {
    socketPath: agent.socketPath,
    limits: { upstreamTimeoutMs: 30_000 },
  });
  await assert.rejects(rawRequest(port, GET, { timeoutMs: 200 }));
  for (let i = 0; i < 50 && aborted === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(aborted, 1, 'the agent request was not aborted');
  assert.equal(proxy.handler.inFlight, 0);
  const line = logs.lines().find((l) => l.msg === 'request');
  assert.equal(line?.code, 'client_closed');
  assert.equal(line?.aborted, true);
});
