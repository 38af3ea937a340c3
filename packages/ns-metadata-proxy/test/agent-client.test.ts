/*
 * The proxy's client for the agent socket: failures mapped to the answers the instance gets, and
 * connections kept alive between requests.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { AgentClient, type AgentExchange, agentError } from '../src/agent-client.js';
import { closeServer, tempDir } from './helpers.js';

test('agent failures map to 503 (unreachable), 504 (too slow), 400 (not forwardable) or 502', () => {
  const status = (code: string) => {
    const e = agentError(Object.assign(new Error(code), { code }));
    return [e.code, e.status];
  };
  for (const code of ['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK', 'EAGAIN', 'MDP_AGENT_CONNECT_TIMEOUT'])
    assert.deepEqual(status(code), ['MDP_ERR_AGENT_UNREACHABLE', 503], code);
  assert.deepEqual(status('MDP_AGENT_TIMEOUT'), ['MDP_ERR_AGENT_TIMEOUT', 504]);
  assert.deepEqual(status('ERR_INVALID_CHAR'), ['MDP_ERR_BAD_REQUEST', 400]);
  for (const code of ['ECONNRESET', 'HPE_INVALID_CONSTANT', 'EPIPE'])
    assert.deepEqual(status(code), ['MDP_ERR_AGENT_BAD_RESPONSE', 502], code);
});

/** One request through the client: resolves with the status and body, or rejects with the error. */
function send(client: AgentClient, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const exchange: AgentExchange = {
      onAgentResponse(res: IncomingMessage) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
      onAgentError: reject,
    };
    client.send('GET', path, ['host', 'localhost'], null, exchange);
  });
}

test('requests share one kept-alive connection; a missing socket is ENOENT at once', async (t) => {
  const socketPath = join(tempDir(t), 'agent.sock');
  let connections = 0;
  const server = createServer((req, res) => res.end(`${req.url}`));
  server.on('connection', () => connections++);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => closeServer(server));
  const client = new AgentClient({ socketPath, timeoutMs: 2_000 });
  t.after(() => client.close());
  for (let i = 0; i < 5; i++) assert.deepEqual(await send(client, `/r${i}`), { status: 200, body: `/r${i}` });
  assert.equal(connections, 1);

  const missing = new AgentClient({ socketPath: `${socketPath}.absent`, timeoutMs: 2_000 });
  t.after(() => missing.close());
  await assert.rejects(send(missing, '/'), { code: 'ENOENT' });
});

test('an agent that does not answer within timeoutMs fails with the timeout code', async (t) => {
  const socketPath = join(tempDir(t), 'agent.sock');
  const server = createServer(() => {
    // Never answers.
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => {
    server.closeAllConnections();
    return closeServer(server);
  });
  const client = new AgentClient({ socketPath, timeoutMs: 150 });
  t.after(() => client.close());
  const started = Date.now();
  await assert.rejects(send(client, '/slow'), { code: 'MDP_AGENT_TIMEOUT' });
  assert.ok(Date.now() - started >= 140);
});

test('a kept-alive connection carries the request timeout too, and the idle timeout once it is free', async (t) => {
  const socketPath = join(tempDir(t), 'agent.sock');
  let connections = 0;
  const server = createServer((req, res) => {
    // The first request is answered; the second never is.
    if (req.url === '/first') res.end('ok');
  });
  server.on('connection', () => connections++);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => {
    server.closeAllConnections();
    return closeServer(server);
  });
  const client = new AgentClient({ socketPath, timeoutMs: 200 });
  t.after(() => client.close());
  assert.deepEqual(await send(client, '/first'), { status: 200, body: 'ok' });
  const started = Date.now();
  await assert.rejects(send(client, '/second'), { code: 'MDP_AGENT_TIMEOUT' });
  assert.ok(Date.now() - started >= 190);
  // Both went over the one connection: the second was the short path's.
  assert.equal(connections, 1);
});

test('a kept-alive connection the agent closed is not reused: the next request opens a new one', async (t) => {
  const socketPath = join(tempDir(t), 'agent.sock');
  const sockets: Array<import('node:net').Socket> = [];
  const server = createServer((req, res) => res.end(`${req.url}`));
  server.on('connection', (s) => sockets.push(s));
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => closeServer(server));
  const client = new AgentClient({ socketPath, timeoutMs: 2_000 });
  t.after(() => client.close());
  // Three connections at once, all idle afterwards.
  assert.deepEqual(
    (await Promise.all([send(client, '/a'), send(client, '/b'), send(client, '/c')])).map((r) => r.body),
    ['/a', '/b', '/c'],
  );
  assert.equal(sockets.length, 3);
  // The agent closes every idle connection (a restart, its keep-alive limit): none is handed out again.
  for (const s of sockets) s.destroy();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await send(client, '/d'), { status: 200, body: '/d' });
  assert.equal(sockets.length, 4);
  // And the new one is kept alive for the next request.
  assert.deepEqual(await send(client, '/e'), { status: 200, body: '/e' });
  assert.equal(sockets.length, 4);
});

test("a kept-alive connection reports to the context of the request that reuses it (as node's agent does)", async (t) => {
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const socketPath = join(tempDir(t), 'agent.sock');
  // Answers /one, /two...; cuts the connection of /cut without an answer.
  const server = createServer((req, res) =>
    req.url === '/cut' ? req.socket.destroy() : res.end(`${req.url}`),
  );
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => closeServer(server));
  const client = new AgentClient({ socketPath, timeoutMs: 2_000 });
  t.after(() => client.close());
  const als = new AsyncLocalStorage<string>();
  const seen: Array<string | undefined> = [];
  const sendIn = (name: string, path: string) =>
    als.run(
      name,
      () =>
        new Promise<void>((resolve) => {
          client.send('GET', path, ['host', 'localhost'], null, {
            onAgentResponse(res: IncomingMessage) {
              seen.push(`${als.getStore()} answered`);
              res.resume();
              res.on('end', () => resolve());
            },
            onAgentError() {
              seen.push(`${als.getStore()} failed`);
              resolve();
            },
          });
        }),
    );
  await sendIn('one', '/one');
  await sendIn('two', '/two');
  // The connection of /one and /two is cut under the third request: its failure is the third's.
  await sendIn('three', '/cut');
  assert.deepEqual(seen, ['one answered', 'two answered', 'three failed']);
});
