/*
 * One proxy: an HTTP/1.1 listener per bind address, all stamping the same network or router id and
 * forwarding over one keep-alive pool to the agent. Also owns what happens before a request exists
 * (malformed input, header overflow, slow clients, CONNECT, too many connections) and the graceful stop.
 *
 * Connections, before a byte is read (what one instance can do to the others of its network):
 * - at most maxConnections across the proxy's listeners, and at most maxConnectionsPerSource from one
 *   source address, so one instance holding connections open cannot lock the others out: over either
 *   cap a connection is closed at once, unread and unanswered;
 * - a connection that sends nothing for firstByteTimeoutMs is closed, unanswered, so idle connections
 *   free their slots in seconds rather than after the 30 s request timeout.
 * Each kind of refusal is logged once, then at most once a second with the count (a flood must not flood
 * the log), and counted in the metrics by reason.
 */
import { createServer, IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type BindAddress,
  type ErrorCode,
  forwardedForFromPeer,
  type InheritedListener,
  type LagGate,
  type Logger,
  listenerFd,
  listenHost,
  listenOnInherited,
  MetadataError,
  type PassedDescriptor,
  type ProxyIdentity,
} from '@nmp/common';
import { AgentClient } from './agent-client.js';
import { ProxyHandler, ProxyResponse } from './handler.js';
import type { ProxyMetrics } from './metrics.js';
import { MAX_HEADER_LINES, parserRefusal } from './request-policy.js';
import type { SsrfPolicy } from './ssrf/policy.js';

export interface ProxyLimits {
  /** Milliseconds for a complete request header block (408). */
  readonly requestTimeoutMs: number;
  /** Milliseconds an idle keep-alive client connection is kept. */
  readonly keepAliveTimeoutMs: number;
  /** Milliseconds to wait for the agent (504). */
  readonly upstreamTimeoutMs: number;
  /** Milliseconds an answer may wait for the instance to read it (slow readers are cut; default 32 s). */
  readonly clientTimeoutMs?: number;
  readonly connectTimeoutMs: number;
  readonly maxConnections: number;
  /** Client connections one source address may hold at once (across the listeners); more are closed. */
  readonly maxConnectionsPerSource: number;
  /** Milliseconds a new connection may stay silent before its first byte, then it is closed; 0: no limit. */
  readonly firstByteTimeoutMs: number;
  readonly maxHeaderSize: number;
  readonly maxBodySize: number;
  readonly backlog: number;
  readonly agentConnections: number;
}

export const DEFAULT_LIMITS: ProxyLimits = {
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
  upstreamTimeoutMs: 32_000,
  clientTimeoutMs: 32_000,
  connectTimeoutMs: 30_000,
  maxConnections: 1024,
  maxConnectionsPerSource: 100,
  firstByteTimeoutMs: 5_000,
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
  /** Opt-in SSRF defences ([metadata_ssrf]); absent when all are off. */
  readonly ssrf?: SsrfPolicy;
  /**
   * A connection pool to the agent shared with other proxies (one daemon, many namespaces). The proxy
   * uses it and leaves closing it to the owner; without it the proxy makes and closes its own.
   */
  readonly agent?: AgentClient;
  readonly metrics?: ProxyMetrics;
  /** Whether the process is behind (default: the process's gate, lag-gate.ts); tests give their own. */
  readonly lag?: LagGate;
}

/**
 * How long a stop waits for a connection that has not been answered yet to send its request (ms); a
 * request on its way arrives well within it, a silent connection is cut after it.
 */
export const UNANSWERED_GRACE_MS = 500;

export interface ListenResult {
  readonly addresses: AddressInfo[];
  /** How many of them are passed sockets (systemd's or a predecessor's). */
  inherited: number;
  /** Passed sockets no bind asked for (closed). */
  readonly unused: AddressInfo[];
}

/** Whether a listening socket's address is the bind's (the link-local zone aside: one per namespace). */
function sameAddress(a: AddressInfo, bind: BindAddress): boolean {
  const pct = a.address.indexOf('%');
  const host = (pct === -1 ? a.address : a.address.slice(0, pct)).toLowerCase();
  return a.port === bind.port && host === bind.host.toLowerCase();
}

export class MetadataProxy {
  readonly handler: ProxyHandler;
  readonly agent: AgentClient;
  readonly servers: Server[] = [];
  readonly limits: ProxyLimits;
  readonly #o: MetadataProxyOptions;
  /** What the last listen() did with passed sockets. */
  listenResult: ListenResult | undefined = undefined;
  #connections = 0;
  /** Accepted client connections, for the graceful stop. */
  readonly #sockets = new Set<Socket>();
  /** Open connections by source address (IPv4-mapped unwrapped: one instance, one count). */
  readonly #bySource = new Map<string, number>();
  readonly #overLimit: ThrottledWarning;
  readonly #overSourceLimit: ThrottledWarning;
  readonly #silent: ThrottledWarning;
  /** Sockets already answered with a refusal: the dead parser may report more errors on them. */
  readonly #refusedSockets = new WeakSet<Duplex>();

  constructor(options: MetadataProxyOptions) {
    this.#o = options;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.agent =
      options.agent ??
      new AgentClient({
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
      clientTimeoutMs: this.limits.clientTimeoutMs ?? 32_000,
      ...(options.admit ? { admit: options.admit } : {}),
      ...(options.ssrf ? { ssrf: options.ssrf } : {}),
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.lag ? { lag: options.lag } : {}),
    });
    const l = this.limits;
    this.#overLimit = new ThrottledWarning(
      options.logger,
      'MDP_ERR_TOO_MANY_CONNECTIONS',
      { reason: 'connection-limit', limit: l.maxConnections },
      'refused',
      'connections refused: limit reached',
    );
    this.#overSourceLimit = new ThrottledWarning(
      options.logger,
      'MDP_ERR_TOO_MANY_SOURCE_CONNECTIONS',
      { reason: 'source-connection-limit', limit: l.maxConnectionsPerSource },
      'refused',
      'connections refused: one source holds its limit',
    );
    this.#silent = new ThrottledWarning(
      options.logger,
      'MDP_ERR_FIRST_BYTE_TIMEOUT',
      { reason: 'no-first-byte', timeoutMs: l.firstByteTimeoutMs },
      'closed',
      'silent connections closed: nothing sent in time',
    );
  }

  /**
   * Build a server for one listener, with `handler.handle` as its request listener; exposed so a daemon
   * can serve listeners it did not bind itself (`server.listen(handle)`).
   */
  createServer(): Server {
    const l = this.limits;
    const server = createServer<typeof IncomingMessage, typeof ProxyResponse>(
      {
        IncomingMessage,
        ServerResponse: ProxyResponse,
        keepAlive: true,
        requestTimeout: l.requestTimeoutMs,
        headersTimeout: l.requestTimeoutMs,
        maxHeaderSize: l.maxHeaderSize,
        requireHostHeader: false,
        connectionsCheckingInterval: Math.min(1000, l.requestTimeoutMs),
        insecureHTTPParser: false,
      },
      this.handler.handle,
    ) as unknown as Server;
    server.keepAliveTimeout = l.keepAliveTimeoutMs;
    // One more than we accept, so that checkRequest() sees the excess instead of Node dropping it.
    server.maxHeadersCount = MAX_HEADER_LINES + 1;
    // Native guard per listener: over the limit the handle is closed before a socket or parser exists.
    server.maxConnections = l.maxConnections;
    server.on('drop', (data?: { remoteAddress?: string }) =>
      this.#refuseConnection(this.#overLimit, data?.remoteAddress),
    );
    server.on('connection', (socket: Socket) => this.#admitConnection(socket));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#clientError(err, socket));
    server.on('connect', (req: IncomingMessage, socket: Duplex) => {
      this.#refuse(
        socket,
        new MetadataError('MDP_ERR_ABSOLUTE_TARGET', {
          reason: 'connect-method',
          method: 'CONNECT',
          target: req.url?.slice(0, 200),
        }),
      );
    });
    this.servers.push(server);
    return server;
  }

  /**
   * Listen on every bind address. Listening sockets passed by systemd (the .socket unit) or by the proxy
   * this one replaces are served instead of binding, matched to the binds by address and port; with no
   * bind configured, every passed socket is served. A passed socket no bind asks for is closed (the
   * configuration changed across a hand-over), a bind no socket was passed for is bound here.
   */
  async listen(inherited: readonly InheritedListener[] = []): Promise<AddressInfo[]> {
    const adopted: Array<{ server: Server; address: AddressInfo }> = [];
    for (const l of inherited) {
      const server = this.createServer();
      await listenOnInherited(server, l.fd, `passed descriptor ${l.fd} (${l.name})`);
      adopted.push({ server, address: server.address() as AddressInfo });
    }
    const result: ListenResult = { addresses: [], inherited: 0, unused: [] };
    this.listenResult = result;
    if (this.#o.binds.length === 0) {
      for (const a of adopted) result.addresses.push(a.address);
      result.inherited = adopted.length;
      return result.addresses;
    }
    for (const bind of this.#o.binds) {
      const i = adopted.findIndex((a) => sameAddress(a.address, bind));
      if (i >= 0) {
        result.addresses.push(adopted.splice(i, 1)[0]!.address);
        result.inherited++;
        continue;
      }
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
      result.addresses.push(server.address() as AddressInfo);
    }
    for (const a of adopted) {
      result.unused.push(a.address);
      this.servers.splice(this.servers.indexOf(a.server), 1);
      await new Promise<void>((resolve) => a.server.close(() => resolve()));
    }
    return result.addresses;
  }

  /** The listening sockets, for a hand-over to a successor (which matches them to its binds by address). */
  descriptors(): PassedDescriptor[] {
    const out: PassedDescriptor[] = [];
    for (const s of this.servers) {
      const fd = listenerFd(s);
      if (fd !== undefined) out.push({ name: 'listen', fd });
    }
    return out;
  }

  get connections(): number {
    return this.#connections;
  }

  /** Connections open from one source address (as X-Forwarded-For would name it). */
  connectionsFrom(source: string): number {
    return this.#bySource.get(source) ?? 0;
  }

  /**
   * Stop accepting, finish in-flight requests until the deadline, then cut the rest. Every answer from
   * now on closes its connection; a connection idle after an answer is closed at once, and each busy one
   * as soon as its answer is out. A connection that has not been answered yet gets UNANSWERED_GRACE_MS
   * to send its request: it may be in the socket's buffer already, and an instance cannot know whether
   * a request cut there was seen.
   */
  async close(deadlineMs = 10_000): Promise<void> {
    this.handler.draining = true;
    const started = Date.now();
    const closing = this.servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (!s.listening) return resolve();
          s.close(() => resolve());
        }),
    );
    const sweep = () => {
      for (const socket of this.#sockets) {
        const res = (socket as { _httpMessage?: ProxyResponse | null })._httpMessage;
        if (res == null) {
          if (socket.bytesWritten > 0 || Date.now() - started >= UNANSWERED_GRACE_MS) socket.destroy();
        } else if (!res.headersSent) res.shouldKeepAlive = false;
      }
    };
    sweep();
    const sweeper = setInterval(sweep, 50);
    sweeper.unref();
    const timer = setTimeout(() => {
      for (const s of this.servers) s.closeAllConnections();
      for (const socket of this.#sockets) socket.destroy();
    }, deadlineMs);
    timer.unref();
    await Promise.all(closing);
    clearInterval(sweeper);
    clearTimeout(timer);
    if (this.#o.agent === undefined) await this.agent.close().catch(() => {});
  }

  #admitConnection(socket: Socket): void {
    const l = this.limits;
    const src = forwardedForFromPeer(socket.remoteAddress) ?? '';
    if (this.#connections >= l.maxConnections) {
      // Over the limit across listeners: refused before a byte is read.
      this.#refuseConnection(this.#overLimit, src, socket);
      return;
    }
    const held = this.#bySource.get(src) ?? 0;
    if (held >= l.maxConnectionsPerSource) {
      // One instance holding many connections must not take the slots of its neighbours.
      this.#refuseConnection(this.#overSourceLimit, src, socket);
      return;
    }
    this.#bySource.set(src, held + 1);
    this.#connections++;
    this.#sockets.add(socket);
    const silence =
      l.firstByteTimeoutMs > 0
        ? setTimeout(closeIfSilent, l.firstByteTimeoutMs, this, socket, src)
        : undefined;
    socket.once('close', () => {
      clearTimeout(silence);
      this.#connections--;
      this.#sockets.delete(socket);
      const n = (this.#bySource.get(src) ?? 1) - 1;
      if (n === 0) this.#bySource.delete(src);
      else this.#bySource.set(src, n);
    });
  }

  /** A connection was refused or closed before its first request: counted, and logged at most once a second. */
  #refuseConnection(kind: ThrottledWarning, src: string | undefined, socket?: Socket): void {
    socket?.destroy();
    this.#o.metrics?.refusedFor(kind.code);
    kind.note(src);
  }

  /**
   * The first-byte timer fired: a connection that has sent nothing is closed without an answer. Timers
   * run before the event loop reads sockets, so on a loop lagging more than the timeout (a boot storm
   * of thousands of connections at once on a busy host) the timer of a connection whose request is
   * already waiting to be read would fire first: the decision waits for this turn's reads
   * (setImmediate runs after them), and only a connection that still has sent nothing is closed.
   */
  silentTimeout(socket: Socket, src: string, afterReads = false): void {
    if (socket.destroyed || socket.bytesRead > 0) return;
    if (!afterReads) {
      setImmediate(() => this.silentTimeout(socket, src, true));
      return;
    }
    this.#refuseConnection(this.#silent, src, socket);
  }

  /** Node's parser gave up on the bytes of this connection (or the request took too long). */
  #clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable || this.#refusedSockets.has(socket)) {
      socket.destroy();
      return;
    }
    const failure = parserRefusal(err);
    const pending = (socket as { _httpMessage?: ProxyResponse | null })._httpMessage;
    if (err.code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a request that closes the connection: nothing of it is read or answered.
      this.#refusedSockets.add(socket);
      this.#o.logger.warn(
        { code: failure.code, src: (socket as Socket).remoteAddress, ...failure.details },
        'ignored',
      );
      if (!(pending instanceof ProxyResponse) || pending.writableFinished) socket.destroy();
      return;
    }
    if (pending instanceof ProxyResponse && !pending.writableFinished) {
      this.#refusedSockets.add(socket);
      if (!pending.req.complete && !pending.headersSent) {
        // The bad bytes are this request's own body (or it never finished): it is the one refused.
        this.handler.fail(pending, failure);
        return;
      }
      // A later request on the connection is bad while the earlier one is still being answered:
      // let that answer finish, then refuse and close.
      pending.once('close', () => {
        const last = (pending as { _last?: boolean })._last === true;
        if (pending.writableFinished && socket.writable && !last) this.#refuse(socket, failure);
        else socket.destroy();
      });
      return;
    }
    this.#refuse(socket, failure);
  }

  /** Answer on a raw socket (no request object exists) and close it. */
  #refuse(socket: Duplex, failure: MetadataError): void {
    this.#refusedSockets.add(socket);
    this.#o.metrics?.request(failure.status, 0);
    this.#o.metrics?.refusedFor(failure.code);
    const src = (socket as Socket).remoteAddress;
    this.#o.logger[failure.level]({ code: failure.code, src, ...failure.details }, failure.message);
    const body = `${failure.message}\n`;
    const reason = STATUS_TEXT[failure.status] ?? 'Error';
    socket.end(
      `HTTP/1.1 ${failure.status} ${reason}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n${body}`,
    );
    socket.once('finish', () => socket.destroy());
  }
}

function closeIfSilent(proxy: MetadataProxy, socket: Socket, src: string): void {
  proxy.silentTimeout(socket, src);
}

/**
 * One warning for the first event, then at most one a second carrying how many happened since the last
 * line (in `countField`) and the latest source: what a connection flood leaves in the log.
 */
class ThrottledWarning {
  #count = 0;
  #loggedAt = 0;

  constructor(
    readonly logger: Logger,
    readonly code: ErrorCode,
    readonly fields: Readonly<Record<string, unknown>>,
    readonly countField: string,
    readonly message: string,
  ) {}

  note(src: string | undefined): void {
    this.#count++;
    const now = Date.now();
    if (now - this.#loggedAt < 1000) return;
    this.logger.warn(
      { code: this.code, ...this.fields, [this.countField]: this.#count, ...(src ? { src } : {}) },
      this.message,
    );
    this.#count = 0;
    this.#loggedAt = now;
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Time-out',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};
