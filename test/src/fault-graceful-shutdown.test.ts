/*
 * Graceful shutdown of the spawned CLIs: on SIGTERM the proxy and the agent stop accepting at once,
 * finish the request in flight (slow upstream), close idle keep-alive connections, and exit with 0.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import {
  CLI,
  freePort,
  SAMPLE_INVENTORY,
  SAMPLE_NETWORK,
  sleep,
  spawnCli,
  tempDir,
} from './fault-harness.js';

const SLOW_MS = 1000;

/** An HTTP server (UNIX path or TCP port) that answers every request after SLOW_MS. */
async function slowServer(t: TestContext, listenOn: string | number): Promise<Server> {
  const server = createHttpServer((req, res) => {
    req.resume();
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 7 });
      res.end('slow-ok');
    }, SLOW_MS);
  });
  await new Promise<void>((resolve) =>
    typeof listenOn === 'number'
      ? server.listen(listenOn, '127.0.0.1', resolve)
      : server.listen(listenOn, resolve),
  );
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return server;
}

/** Send raw bytes on a connection and collect everything until the other side closes. */
function exchange(socket: Socket, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    socket.on('data', (d: Buffer) => {
      out += d.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(out));
    socket.write(bytes);
  });
}

function connectTo(target: { port: number } | { path: string }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = 'path' in target ? connect(target.path) : connect(target.port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

test('proxy: SIGTERM with a slow request in flight: it completes, new connections are refused, exit 0', async (t) => {
  const dir = tempDir(t);
  const socketPath = join(dir, 'agent.sock');
  await slowServer(t, socketPath);
  const port = await freePort();
  const proxy = spawnCli(t, 'proxy', CLI.proxy, [
    '--bind',
    `127.0.0.1:${port}`,
    '--network-id',
    'net-shutdown',
    '--metadata-proxy-socket',
    socketPath,
  ]);
  await proxy.waitFor(/ns-metadata-proxy listening/);

  const idle = await connectTo({ port });
  const idleClosed = exchange(idle, '');
  const busy = await connectTo({ port });
  const answer = exchange(busy, 'GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(200);
  const signalled = Date.now();
  proxy.child.kill('SIGTERM');
  await proxy.waitFor(/"msg":"stopping"/, 2000);

  await assert.rejects(connectTo({ port }), /ECONNREFUSED/, 'a new connection was accepted while stopping');
  await idleClosed;
  assert.ok(Date.now() - signalled < SLOW_MS, 'the idle keep-alive connection was not closed at once');

  const text = await answer;
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(text.endsWith('\r\n\r\nslow-ok'), text);
  assert.equal(await proxy.exited, 0);
  assert.ok(Date.now() - signalled < SLOW_MS + 2000, 'the proxy took too long to exit');
  assert.match(proxy.output(), /"inFlight":1/);
  assert.match(proxy.output(), /"msg":"stopped"/);
});

test('agent: SIGTERM with a slow Nova request in flight: it completes, new connections are refused, exit 0', async (t) => {
  const dir = tempDir(t);
  const socketPath = join(dir, 'agent.sock');
  const novaPort = await freePort();
  await slowServer(t, novaPort);
  const agent = spawnCli(
    t,
    'agent',
    CLI.agent,
    [
      '--resolver',
      'inventory',
      '--inventory-file',
      SAMPLE_INVENTORY,
      '--metadata-proxy-socket',
      socketPath,
      '--nova-metadata-port',
      String(novaPort),
    ],
    { NMP_METADATA_PROXY_SHARED_SECRET: 'shutdown-secret' },
  );
  await agent.waitFor(/metadata-agent listening/);

  const busy = await connectTo({ path: socketPath });
  const answer = exchange(
    busy,
    `GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 127.0.0.1\r\nX-Neutron-Network-ID: ${SAMPLE_NETWORK}\r\nConnection: close\r\n\r\n`,
  );
  await sleep(200);
  const signalled = Date.now();
  agent.child.kill('SIGTERM');
  await agent.waitFor(/"msg":"stopping"/, 2000);

  await assert.rejects(connectTo({ path: socketPath }), /ECONNREFUSED|ENOENT/);
  const text = await answer;
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(text.endsWith('\r\n\r\nslow-ok'), text);
  assert.equal(await agent.exited, 0);
  assert.ok(Date.now() - signalled < SLOW_MS + 2000, 'the agent took too long to exit');
});

test('agent: SIGTERM with a silent and a half-sent connection open: exit 0 after the short grace, not at the deadline', async (t) => {
  const dir = tempDir(t);
  const socketPath = join(dir, 'agent.sock');
  const agent = spawnCli(
    t,
    'agent',
    CLI.agent,
    ['--resolver', 'inventory', '--inventory-file', SAMPLE_INVENTORY, '--metadata-proxy-socket', socketPath],
    { NMP_METADATA_PROXY_SHARED_SECRET: 'shutdown-secret' },
  );
  await agent.waitFor(/metadata-agent listening/);
  const silent = await connectTo({ path: socketPath });
  const halfSent = await connectTo({ path: socketPath });
  halfSent.write('GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n');
  silent.on('error', () => {});
  halfSent.on('error', () => {});
  await sleep(100);
  const signalled = Date.now();
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
  assert.ok(Date.now() - signalled < 2000, `the agent took ${Date.now() - signalled} ms to exit`);
});
