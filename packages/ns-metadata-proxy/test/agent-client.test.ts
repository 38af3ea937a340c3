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
