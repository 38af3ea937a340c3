/*
 * Test helpers for the proxy: a capturing stand-in for the agent on a real UNIX socket, a raw TCP
 * client that sends exactly the bytes a hostile instance would, and a proxy started on an ephemeral port.
 */

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type ProxyIdentity, parseBind } from '@nmp/common';
import { captureLogs, type LogCapture, tempDir as testkitTempDir } from '@nmp/testkit';
import { MetadataProxy, type MetadataProxyOptions, type ProxyLimits } from '../src/proxy.js';

export interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export interface FakeAgent {
  readonly socketPath: string;
  /** Requests the agent received completely. */
  readonly seen: Seen[];
  /** Requests whose head reached the agent at all (complete or not). */
  readonly started: () => number;
  server: Server;
  /** Replace how the fake answers (default: 200 JSON echo of what it saw). */
  respond: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void;
}

export function tempDir(t: TestContext, prefix = 'nmp-proxy-'): string {
  return testkitTempDir(t, prefix);
}

export async function startFakeAgent(t: TestContext, socketPath?: string): Promise<FakeAgent> {
  const path = socketPath ?? join(tempDir(t), 'agent.sock');
  let started = 0;
  const agent: FakeAgent = {
    socketPath: path,
    seen: [],
    started: () => started,
    server: undefined as unknown as Server,
    respond: (_req, res, seen) => {
      const body = JSON.stringify({ url: seen.url, method: seen.method, headers: seen.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    },
  };
  agent.server = createServer((req, res) => {
    started++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: req.rawHeaders,
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      agent.seen.push(seen);
      agent.respond(req, res, seen);
    });
  });
  await new Promise<void>((resolve) => agent.server.listen(path, resolve));
  t.after(() => closeServer(agent.server));
  return agent;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export { captureLogs, type LogCapture };

export interface StartedProxy {
  readonly proxy: MetadataProxy;
  readonly port: number;
  readonly logs: LogCapture;
}

export async function startProxy(
  t: TestContext,
  options: {
    socketPath: string;
    identity?: ProxyIdentity;
    bind?: string;
    limits?: Partial<ProxyLimits>;
    admit?: MetadataProxyOptions['admit'];
  },
): Promise<StartedProxy> {
  const logs = captureLogs('ns-metadata-proxy');
  const proxy = new MetadataProxy({
    identity: options.identity ?? { mode: 'network', id: 'net-1' },
    binds: [parseBind(options.bind ?? '127.0.0.1:0')],
    socketPath: options.socketPath,
    logger: logs.logger,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.admit ? { admit: options.admit } : {}),
  });
  const [address] = await proxy.listen();
  t.after(() => proxy.close(100));
  return { proxy, port: address!.port, logs };
}

export interface RawResponse {
  readonly status: number;
  readonly head: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** Whether the server closed the connection after answering. */
  readonly closed: boolean;
}

/** Send raw bytes on a new TCP connection; read one response (Content-Length framed, or until close). */
export function rawRequest(
  port: number,
  data: string | Buffer,
  options: { host?: string; timeoutMs?: number; localAddress?: string; closeWaitMs?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      port,
      host: options.host ?? '127.0.0.1',
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    let buf = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(
      () => finish(new Error(`no complete response within ${options.timeoutMs ?? 5000} ms`)),
      options.timeoutMs ?? 5000,
    );
    const finish = (err?: Error, closed = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const head = text.slice(0, end);
      const [statusLine, ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({
        status: Number(statusLine!.split(' ')[1]),
        head,
        headers,
        body: buf.subarray(end + 4),
        closed,
      });
    };
    const tryComplete = () => {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(buf.subarray(0, end).toString('latin1'));
      if (m && buf.length >= end + 4 + Number(m[1])) {
        // Give the server a moment to close, so `closed` tells whether it did.
        setTimeout(
          () => finish(undefined, socket.destroyed || socket.readableEnded),
          options.closeWaitMs ?? 250,
        );
      }
    };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      tryComplete();
    });
    socket.on('end', () => finish(undefined, true));
    socket.on('close', () => finish(undefined, true));
    socket.on('error', (e) => (buf.length ? finish(undefined, true) : finish(e)));
    socket.write(data);
  });
}

/*
 * Hostile-input tests share one shape: the attack on one connection, a normal request on another at the
 * same time; the attack gets its status and plain-text body, the normal request is served, and the agent
 * sees the normal request only.
 */

/** The path of the normal request served alongside an attack; nothing else may reach the agent. */
export const NORMAL_PATH = '/latest/meta-data/instance-id';

export interface HostileSetup extends StartedProxy {
  readonly agent: FakeAgent;
}

/** A capturing fake agent and a proxy in front of it, with short timeouts unless given. */
export async function hostileSetup(
  t: TestContext,
  options: { limits?: Partial<ProxyLimits>; bind?: string; admit?: MetadataProxyOptions['admit'] } = {},
): Promise<HostileSetup> {
  const agent = await startFakeAgent(t);
  const started = await startProxy(t, {
    socketPath: agent.socketPath,
    limits: { requestTimeoutMs: 2000, keepAliveTimeoutMs: 2000, upstreamTimeoutMs: 2000, ...options.limits },
    ...(options.bind ? { bind: options.bind } : {}),
    ...(options.admit ? { admit: options.admit } : {}),
  });
  return { ...started, agent };
}

/** A well-formed request on its own connection. */
export function normalRequest(
  port: number,
  options: { host?: string; localAddress?: string; timeoutMs?: number } = {},
): Promise<RawResponse> {
  return rawRequest(
    port,
    `GET ${NORMAL_PATH} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n`,
    options,
  );
}

export function assertServed(res: RawResponse): void {
  assert.equal(res.status, 200, `the normal request was not served: ${res.head}`);
  assert.equal(JSON.parse(res.body.toString()).url, NORMAL_PATH);
}

/** Our plain-text refusal, on a connection the proxy closed. */
export function assertRefused(res: RawResponse, status: number, body: string, closed = true): void {
  assert.equal(res.status, status, `expected ${status}, got: ${res.head}`);
  assert.equal(res.headers['content-type'], 'text/plain; charset=UTF-8');
  assert.equal(res.body.toString(), body);
  if (closed) assert.equal(res.closed, true, 'the proxy should have closed the connection');
}

/** Only normal requests reached the agent, and exactly `normal` of them started. */
export function assertAgentSawOnlyNormal(agent: FakeAgent, normal = 1): void {
  assert.deepEqual(
    agent.seen.map((s) => s.url),
    Array.from({ length: normal }, () => NORMAL_PATH),
  );
  assert.equal(agent.started(), normal, 'a hostile request reached the agent');
}

/** The log line with this code (the refusal), which must exist. */
export function logLine(logs: LogCapture, code: string, reason?: string): Record<string, unknown> {
  const line = logs.lines().find((l) => l.code === code && (reason === undefined || l.reason === reason));
  assert.ok(line, `no log line with code ${code}${reason ? ` and reason ${reason}` : ''}:\n${logs.text()}`);
  return line;
}

export const BAD_REQUEST = 'Bad request.\n';

/** An open connection that sends bytes when told, and collects whatever comes back. */
export interface HeldConnection {
  readonly socket: Socket;
  /** Everything received so far. */
  readonly received: () => string;
  /** Resolves when the server closes the connection (or after timeoutMs, then rejects). */
  readonly closed: (timeoutMs?: number) => Promise<number>;
}

export async function holdConnection(
  t: TestContext,
  port: number,
  options: { host?: string; localAddress?: string } = {},
): Promise<HeldConnection> {
  const socket = connect({
    port,
    host: options.host ?? '127.0.0.1',
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  t.after(() => socket.destroy());
  const opened = Date.now();
  let data = '';
  let closedAt = 0;
  const closedWaiters: Array<() => void> = [];
  socket.on('data', (d: Buffer) => {
    data += d.toString('latin1');
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closedAt = Date.now();
    for (const w of closedWaiters) w();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    received: () => data,
    closed: (timeoutMs = 10_000) =>
      new Promise<number>((resolve, reject) => {
        if (closedAt !== 0) return resolve(closedAt - opened);
        const timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs);
        closedWaiters.push(() => {
          clearTimeout(timer);
          resolve(closedAt - opened);
        });
      }),
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
