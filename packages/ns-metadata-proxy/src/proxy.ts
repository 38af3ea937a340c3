/*
 * One proxy: an HTTP/1.1 listener per bind address, all stamping the same network or router id and
 * forwarding over one keep-alive pool to the agent. Also owns what happens before a request exists
 * (malformed input, header overflow, slow clients, CONNECT, too many connections) and the graceful stop.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ErrorCode, type Logger, MetadataError } from '@nmp/common';
import type { Pool } from 'undici';
import { createAgentPool } from './agent-client.js';
import { type BindAddress, listenHost } from './bind-address.js';
import { ProxyHandler } from './handler.js';
import type { ProxyIdentity } from './header-policy.js';

export interface ProxyLimits {
  /** Milliseconds for a complete request header block (408). */
  readonly requestTimeoutMs: number;
  /** Milliseconds an idle keep-alive client connection is kept. */
  readonly keepAliveTimeoutMs: number;
  /** Milliseconds to wait for the agent (504). */
  readonly upstreamTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxConnections: number;
  readonly maxHeaderSize: number;
  readonly maxBodySize: number;
  readonly backlog: number;
  readonly agentConnections: number;
}

export const DEFAULT_LIMITS: ProxyLimits = {
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
  upstreamTimeoutMs: 32_000,
  connectTimeoutMs: 30_000,
  maxConnections: 1024,
  maxHeaderSize: 16 * 1024,
  maxBodySize: 64 * 1024,
  backlog: 4096,
  agentConnections: 128,
};

export interface MetadataProxyOptions {
  readonly identity: ProxyIdentity;
  readonly binds: readonly BindAddress[];
  readonly socketPath: string;
  readonly logger: Logger;
  readonly limits?: Partial<ProxyLimits>;
  readonly admit?: (source: string) => MetadataError | undefined;
}

export class MetadataProxy {
  readonly handler: ProxyHandler;
  readonly agent: Pool;
  readonly servers: Server[] = [];
  readonly limits: ProxyLimits;
  readonly #o: MetadataProxyOptions;
  #connections = 0;

  constructor(options: MetadataProxyOptions) {
    this.#o = options;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.agent = createAgentPool({
      socketPath: options.socketPath,
      timeoutMs: this.limits.upstreamTimeoutMs,
      connectTimeoutMs: this.limits.connectTimeoutMs,
      connections: this.limits.agentConnections,
    });
    this.handler = new ProxyHandler({
      identity: options.identity,
      agent: this.agent,
      logger: options.logger,
      maxBodySize: this.limits.maxBodySize,
      ...(options.admit ? { admit: options.admit } : {}),
    });
  }

  /** Build a server for one listener; exposed so a daemon can attach listeners it did not bind itself. */
  createServer(): Server {
    const l = this.limits;
    const server = createServer(
      {
        keepAlive: true,
        requestTimeout: l.requestTimeoutMs,
        headersTimeout: l.requestTimeoutMs,
        maxHeaderSize: l.maxHeaderSize,
        requireHostHeader: false,
        connectionsCheckingInterval: Math.min(1000, l.requestTimeoutMs),
        insecureHTTPParser: false,
      },
      this.handler.handle,
    );
    server.keepAliveTimeout = l.keepAliveTimeoutMs;
    server.maxHeadersCount = 100;
    server.on('connection', (socket: Socket) => this.#admitConnection(socket));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#clientError(err, socket));
    server.on('connect', (req: IncomingMessage, socket: Duplex) => {
      this.#rawRefusal(socket, 'MDP_ERR_ABSOLUTE_TARGET', {
        method: 'CONNECT',
        target: req.url?.slice(0, 200),
      });
    });
    this.servers.push(server);
    return server;
  }

  async listen(): Promise<AddressInfo[]> {
    const addresses: AddressInfo[] = [];
    for (const bind of this.#o.binds) {
      const server = this.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(
          { host: listenHost(bind), port: bind.port, backlog: this.limits.backlog, ipv6Only: false },
          () => {
            server.off('error', reject);
            resolve();
          },
        );
      });
      addresses.push(server.address() as AddressInfo);
    }
    return addresses;
  }

  get connections(): number {
    return this.#connections;
  }

  /** Stop accepting, finish in-flight requests until the deadline, then cut the rest. */
  async close(deadlineMs = 10_000): Promise<void> {
    const closing = this.servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (!s.listening) return resolve();
          s.close(() => resolve());
          s.closeIdleConnections();
        }),
    );
    const timer = setTimeout(() => {
      for (const s of this.servers) s.closeAllConnections();
    }, deadlineMs);
    timer.unref();
    await Promise.all(closing);
    clearTimeout(timer);
    await this.agent.close().catch(() => {});
  }

  #admitConnection(socket: Socket): void {
    if (this.#connections >= this.limits.maxConnections) {
      // Refuse before any parser or buffer is spent on it.
      this.#o.logger.warn(
        { code: 'MDP_ERR_TOO_MANY_CONNECTIONS', src: socket.remoteAddress },
        'connection refused: limit reached',
      );
      socket.destroy();
      return;
    }
    this.#connections++;
    socket.once('close', () => {
      this.#connections--;
    });
  }

  #clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const busy = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (err.code === 'ECONNRESET' || !socket.writable || busy) {
      socket.destroy();
      return;
    }
    let code: ErrorCode = 'MDP_ERR_BAD_REQUEST';
    if (err.code === 'HPE_HEADER_OVERFLOW') code = 'MDP_ERR_HEADERS_TOO_LARGE';
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT')
      code = 'MDP_ERR_REQUEST_TIMEOUT';
    this.#rawRefusal(socket, code, { parser: err.code });
  }

  /** Answer on a raw socket (no request object exists) and close it. */
  #rawRefusal(socket: Duplex, code: ErrorCode, details: Record<string, unknown>): void {
    const failure = new MetadataError(code, details);
    const src = (socket as Socket).remoteAddress;
    this.#o.logger[failure.level]({ code, src, ...details }, failure.message);
    const body = `${failure.message}\n`;
    const reason = STATUS_TEXT[failure.status] ?? 'Error';
    socket.end(
      `HTTP/1.1 ${failure.status} ${reason}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n${body}`,
    );
    socket.once('finish', () => socket.destroy());
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Time-out',
  413: 'Payload Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
};
