/*
 * The serving process. The supervisor (root) forks it, as the unprivileged proxy user when one is
 * configured, and passes it listening sockets that helpers created inside namespaces. It never enters a
 * namespace and holds no privilege: it accepts, polices, stamps and forwards, exactly as the per-namespace
 * proxy does, with that proxy's own code and the same serving settings (servingSettings() of the same
 * options): limits and timeouts, connection caps, rate limiting, the SSRF defences, metrics.
 *
 * Per attachment (one namespace): a MetadataProxy that builds each listener's http.Server (parser limits,
 * connection caps, refusals before a request exists, graceful close), its own rate-limit table (as each
 * haproxy had), and a ProxyHandler with the attachment's identity on the ONE agent pool the whole process
 * shares. The listener that accepted a connection therefore decides the network or router id that is
 * stamped. The SSRF policy (one node key: a token is bound to its source and identity, so it is good in
 * its own namespace only) and the metrics are the worker's, shared by every attachment.
 *
 * IPC from the supervisor: first {op:'init', seq: 0, settings, tokenKey?} (the node key travels here,
 * never in argv: the worker cannot read a root-only key file, and argv is public); then
 * {op:'listen', seq, key, identity, bind} + handle, {op:'close', seq, key}, {op:'stats', seq},
 * {op:'metrics', seq}. Every one is answered with {seq, ok, ...}.
 */
import type { Server } from 'node:http';
import { createLogger, formatAddress, type Logger, type ProxyIdentity, packageVersion } from '@nmp/common';
import {
  AgentClient,
  createSsrfPolicy,
  MetadataProxy,
  type ProxyHandler,
  type ProxyLimits,
  ProxyMetrics,
  RateLimiter,
  type RateLimiterOptions,
  SSRF_REFUSAL_REASONS,
  type SsrfPolicy,
  type SsrfSettings,
} from '@nmp/ns-metadata-proxy';

/** What the worker serves with: ServingSettings of the daemon's configuration, plus where to log. */
export interface WorkerSettings {
  readonly socketPath: string;
  readonly limits: ProxyLimits;
  /** Per-attachment rate limiting (each namespace its own table, as each haproxy had). */
  readonly rateLimit?: RateLimiterOptions | undefined;
  /** [metadata_ssrf]; with a token mode the supervisor sends the node key in the init message. */
  readonly ssrf?: SsrfSettings | undefined;
  /** Keep metrics (the supervisor serves them on the daemon's admin socket, asking with op 'metrics'). */
  readonly metrics?: boolean;
  readonly logLevel: string;
  readonly logFile?: string;
}

export type WorkerRequest =
  | {
      readonly op: 'init';
      readonly seq: 0;
      readonly settings: WorkerSettings;
      /** The SSRF node key, hex (token mode only). */
      readonly tokenKey?: string;
    }
  | {
      readonly op: 'listen';
      readonly seq: number;
      readonly key: string;
      readonly identity: ProxyIdentity;
      readonly bind: string;
    }
  | { readonly op: 'close'; readonly seq: number; readonly key: string }
  /** The listening socket of one bind, sent back with the answer (a hand-over to a new daemon). */
  | { readonly op: 'export'; readonly seq: number; readonly key: string; readonly bind: string }
  | { readonly op: 'stats'; readonly seq: number }
  | { readonly op: 'metrics'; readonly seq: number };

export interface WorkerAttachmentStats {
  readonly listening: readonly string[];
  readonly connections: number;
  readonly inFlight: number;
}

export interface WorkerStats {
  readonly pid: number;
  readonly rss: number;
  readonly attachments: Readonly<Record<string, WorkerAttachmentStats>>;
}

export type WorkerReply =
  | {
      readonly seq: number;
      readonly ok: true;
      readonly address?: string;
      readonly stats?: WorkerStats;
      /** op 'metrics': the Prometheus text. */
      readonly metrics?: string;
    }
  | { readonly seq: number; readonly ok: false; readonly error: string };

/** What every attachment of the worker shares. */
interface Shared {
  readonly agent: AgentClient;
  readonly settings: WorkerSettings;
  readonly logger: Logger;
  readonly ssrf: SsrfPolicy | undefined;
  readonly metrics: ProxyMetrics | undefined;
}

class ServedAttachment {
  readonly proxy: MetadataProxy;
  readonly handler: ProxyHandler;
  readonly servers = new Set<Server>();
  /** The server of each bind specification. */
  readonly byBind = new Map<string, Server>();

  constructor(
    readonly identity: ProxyIdentity,
    shared: Shared,
  ) {
    const s = shared.settings;
    const limiter = s.rateLimit ? new RateLimiter(s.rateLimit) : undefined;
    // One proxy per namespace, all on the worker's one pool to the agent.
    this.proxy = new MetadataProxy({
      identity,
      binds: [],
      socketPath: s.socketPath,
      logger: shared.logger,
      limits: s.limits,
      agent: shared.agent,
      ...(limiter ? { admit: limiter.admit } : {}),
      ...(shared.ssrf ? { ssrf: shared.ssrf } : {}),
      ...(shared.metrics ? { metrics: shared.metrics } : {}),
    });
    this.handler = this.proxy.handler;
  }

  /** A server for a handed-over listener: the namespace's proxy answers on it. */
  serve(handle: object, backlog: number, bind: string): Promise<Server> {
    const server = this.proxy.createServer();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(handle, backlog, () => {
        server.off('error', reject);
        this.servers.add(server);
        this.byBind.set(bind, server);
        resolve(server);
      });
    });
  }

  stats(): WorkerAttachmentStats {
    const listening: string[] = [];
    for (const s of this.servers) if (s.listening) listening.push(formatAddress(s.address()));
    return { listening, connections: this.proxy.connections, inFlight: this.handler.inFlight };
  }

  /** Stop accepting now; in-flight requests finish (deadline 10 s), in the background unless awaited. */
  close(): Promise<void> {
    return this.proxy.close(10_000).catch(() => {});
  }
}

export class ServingWorker {
  readonly agent: AgentClient;
  /** Undefined unless settings.metrics. */
  readonly metrics: ProxyMetrics | undefined;
  readonly #attachments = new Map<string, ServedAttachment>();
  readonly #settings: WorkerSettings;
  readonly #shared: Shared;

  /** `tokenKey`: the SSRF node key (the supervisor's; required with a token mode). */
  constructor(settings: WorkerSettings, logger: Logger, tokenKey?: Buffer) {
    this.#settings = settings;
    this.agent = new AgentClient({
      socketPath: settings.socketPath,
      timeoutMs: settings.limits.upstreamTimeoutMs,
      connectTimeoutMs: settings.limits.connectTimeoutMs,
      connections: settings.limits.agentConnections,
    });
    const ssrf = settings.ssrf
      ? createSsrfPolicy(settings.ssrf, { key: tokenKey, warnings: [] }).policy
      : undefined;
    this.metrics = settings.metrics
      ? new ProxyMetrics({
          mode: 'daemon',
          version: packageVersion(import.meta.url),
          defaultMetrics: true,
          ...(ssrf ? { extraReasons: SSRF_REFUSAL_REASONS } : {}),
        })
      : undefined;
    this.metrics?.setSources({
      connections: () => this.#sum((a) => a.proxy.connections),
      inFlight: () => this.#sum((a) => a.handler.inFlight),
    });
    this.#shared = { agent: this.agent, settings, logger, ssrf, metrics: this.metrics };
  }

  #sum(of: (a: ServedAttachment) => number): number {
    let n = 0;
    for (const a of this.#attachments.values()) n += of(a);
    return n;
  }

  async handle(request: WorkerRequest, handle: unknown): Promise<WorkerReply & { handle?: object }> {
    try {
      switch (request.op) {
        case 'listen': {
          if (handle === undefined || handle === null) throw new Error('listen without a socket handle');
          let served = this.#attachments.get(request.key);
          if (
            served !== undefined &&
            (served.identity.mode !== request.identity.mode || served.identity.id !== request.identity.id)
          ) {
            void served.close();
            served = undefined;
          }
          if (served === undefined) {
            served = new ServedAttachment(request.identity, this.#shared);
            this.#attachments.set(request.key, served);
          }
          const server = await served.serve(handle as object, this.#settings.limits.backlog, request.bind);
          return { seq: request.seq, ok: true, address: formatAddress(server.address()) };
        }
        case 'export': {
          // The raw handle ('net.Native' over IPC): whoever receives it holds the socket without
          // accepting on it, and this worker goes on serving it until it is told to close.
          const server = this.#attachments.get(request.key)?.byBind.get(request.bind);
          const raw = (server as unknown as { _handle?: object | null } | undefined)?._handle;
          if (!server?.listening || !raw)
            throw new Error(`${request.key}: nothing listens for ${request.bind}`);
          return { seq: request.seq, ok: true, address: formatAddress(server.address()), handle: raw };
        }
        case 'close': {
          void this.#attachments.get(request.key)?.close();
          this.#attachments.delete(request.key);
          return { seq: request.seq, ok: true };
        }
        case 'stats': {
          const attachments: Record<string, WorkerAttachmentStats> = {};
          for (const [key, a] of this.#attachments) attachments[key] = a.stats();
          return {
            seq: request.seq,
            ok: true,
            stats: { pid: process.pid, rss: process.memoryUsage.rss(), attachments },
          };
        }
        case 'metrics': {
          if (this.metrics === undefined) throw new Error('metrics are off (no admin_socket)');
          return { seq: request.seq, ok: true, metrics: await this.metrics.render() };
        }
        case 'init':
          throw new Error('the worker is initialised already');
        default:
          throw new Error(`unknown op ${JSON.stringify((request as { op: unknown }).op)}`);
      }
    } catch (err) {
      // A handle we could not serve must not stay open (it would hold the namespace's port).
      if (request.op === 'listen') (handle as { close?: () => void } | undefined)?.close?.();
      return { seq: request.seq, ok: false, error: (err as Error).message ?? String(err) };
    }
  }

  /** Stop accepting everywhere, let what is in flight finish (its answers need the agent pool), then close. */
  async close(): Promise<void> {
    const closing = [...this.#attachments.values()].map((a) => a.close());
    this.#attachments.clear();
    await Promise.all(closing);
    await this.agent.close().catch(() => {});
  }
}

/** Entry point when forked by the supervisor: everything else waits for the init message. */
function runForked(): void {
  process.title = 'metadata-proxy-daemon worker';
  process.once('message', (init: WorkerRequest) => {
    if (init.op !== 'init') {
      process.send?.({ seq: init.seq, ok: false, error: 'the first message must be init' });
      process.exit(1);
    }
    serveForked(init.settings, init.tokenKey === undefined ? undefined : Buffer.from(init.tokenKey, 'hex'));
  });
}

function serveForked(settings: WorkerSettings, tokenKey: Buffer | undefined): void {
  const logger = createLogger({
    name: 'metadata-proxy-daemon',
    level: settings.logLevel,
    base: { role: 'worker' },
    ...(settings.logFile ? { file: settings.logFile } : {}),
  });
  const worker = new ServingWorker(settings, logger, tokenKey);
  process.on('message', (message: WorkerRequest, handle: unknown) => {
    void worker
      .handle(message, handle)
      .then(({ handle: back, ...reply }) => process.send?.(reply, back as never));
  });
  // The supervisor is gone (or stopping us): finish what is in flight and leave.
  const stop = () => {
    void worker.close().finally(() => {
      logger.flush();
      setTimeout(() => process.exit(0), 100).unref();
    });
  };
  process.once('disconnect', stop);
  process.once('SIGTERM', stop);
  process.once('SIGINT', () => {});
  logger.info({ uid: process.getuid?.(), gid: process.getgid?.(), agent: settings.socketPath }, 'serving');
  process.send?.({ seq: 0, ok: true });
}

if (process.send !== undefined && process.argv[1]?.endsWith('/worker.js')) runForked();
