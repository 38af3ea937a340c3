/*
 * The serving process. The supervisor (root) forks it, as the unprivileged proxy user when one is
 * configured, and passes it listening sockets that helpers created inside namespaces. It never enters a
 * namespace and holds no privilege: it accepts, polices, stamps and forwards, exactly as the per-namespace
 * proxy does, with that proxy's own code.
 *
 * Per attachment (one namespace): a MetadataProxy that builds each listener's http.Server (parser limits,
 * connection cap, refusals before a request exists, graceful close), and a ProxyHandler with the
 * attachment's identity on the ONE agent pool the whole process shares. The listener that accepted a
 * connection therefore decides the network or router id that is stamped.
 *
 * IPC from the supervisor: {op:'listen', seq, key, identity, bind} + handle, {op:'close', seq, key},
 * {op:'stats', seq}. Every one is answered with {seq, ok, ...}.
 */
import type { Server } from 'node:http';
import { createLogger, formatAddress, type Logger } from '@nmp/common';
import {
  AgentClient,
  MetadataProxy,
  type ProxyHandler,
  type ProxyIdentity,
  type ProxyLimits,
  RateLimiter,
  type RateLimiterOptions,
} from '@nmp/ns-metadata-proxy';

export interface WorkerSettings {
  readonly socketPath: string;
  readonly limits: ProxyLimits;
  /** Per-attachment rate limiting (each namespace its own table, as each haproxy had). */
  readonly rateLimit?: RateLimiterOptions;
  readonly logLevel: string;
  readonly logFile?: string;
}

export type WorkerRequest =
  | {
      readonly op: 'listen';
      readonly seq: number;
      readonly key: string;
      readonly identity: ProxyIdentity;
      readonly bind: string;
    }
  | { readonly op: 'close'; readonly seq: number; readonly key: string }
  | { readonly op: 'stats'; readonly seq: number };

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
  | { readonly seq: number; readonly ok: true; readonly address?: string; readonly stats?: WorkerStats }
  | { readonly seq: number; readonly ok: false; readonly error: string };

class ServedAttachment {
  readonly proxy: MetadataProxy;
  readonly handler: ProxyHandler;
  readonly servers = new Set<Server>();

  constructor(
    readonly identity: ProxyIdentity,
    agent: AgentClient,
    settings: WorkerSettings,
    logger: Logger,
  ) {
    const limiter = settings.rateLimit ? new RateLimiter(settings.rateLimit) : undefined;
    // One proxy per namespace, all on the worker's one pool to the agent.
    this.proxy = new MetadataProxy({
      identity,
      binds: [],
      socketPath: settings.socketPath,
      logger,
      limits: settings.limits,
      agent,
      ...(limiter ? { admit: limiter.admit } : {}),
    });
    this.handler = this.proxy.handler;
  }

  /** A server for a handed-over listener: the namespace's proxy answers on it. */
  serve(handle: object, backlog: number): Promise<Server> {
    const server = this.proxy.createServer();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(handle, backlog, () => {
        server.off('error', reject);
        this.servers.add(server);
        resolve(server);
      });
    });
  }

  stats(): WorkerAttachmentStats {
    const listening: string[] = [];
    for (const s of this.servers) if (s.listening) listening.push(formatAddress(s.address()));
    return { listening, connections: this.proxy.connections, inFlight: this.handler.inFlight };
  }

  /** Stop accepting now; in-flight requests finish in the background (deadline 10 s). */
  close(): void {
    void this.proxy.close(10_000).catch(() => {});
  }
}

export class ServingWorker {
  readonly agent: AgentClient;
  readonly #attachments = new Map<string, ServedAttachment>();
  readonly #settings: WorkerSettings;
  readonly #logger: Logger;

  constructor(settings: WorkerSettings, logger: Logger) {
    this.#settings = settings;
    this.#logger = logger;
    this.agent = new AgentClient({
      socketPath: settings.socketPath,
      timeoutMs: settings.limits.upstreamTimeoutMs,
      connectTimeoutMs: settings.limits.connectTimeoutMs,
      connections: settings.limits.agentConnections,
    });
  }

  async handle(request: WorkerRequest, handle: unknown): Promise<WorkerReply> {
    try {
      switch (request.op) {
        case 'listen': {
          if (handle === undefined || handle === null) throw new Error('listen without a socket handle');
          let served = this.#attachments.get(request.key);
          if (
            served !== undefined &&
            (served.identity.mode !== request.identity.mode || served.identity.id !== request.identity.id)
          ) {
            served.close();
            served = undefined;
          }
          if (served === undefined) {
            served = new ServedAttachment(request.identity, this.agent, this.#settings, this.#logger);
            this.#attachments.set(request.key, served);
          }
          const server = await served.serve(handle as object, this.#settings.limits.backlog);
          return { seq: request.seq, ok: true, address: formatAddress(server.address()) };
        }
        case 'close': {
          this.#attachments.get(request.key)?.close();
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
        default:
          throw new Error(`unknown op ${JSON.stringify((request as { op: unknown }).op)}`);
      }
    } catch (err) {
      // A handle we could not serve must not stay open (it would hold the namespace's port).
      (handle as { close?: () => void } | undefined)?.close?.();
      return { seq: request.seq, ok: false, error: (err as Error).message ?? String(err) };
    }
  }

  async close(): Promise<void> {
    for (const a of this.#attachments.values()) a.close();
    this.#attachments.clear();
    await this.agent.close().catch(() => {});
  }
}

/** Entry point when forked by the supervisor: settings in argv[2]. */
function runForked(): void {
  const settings = JSON.parse(process.argv[2] ?? '{}') as WorkerSettings;
  const logger = createLogger({
    name: 'metadata-proxy-daemon',
    level: settings.logLevel,
    base: { role: 'worker' },
    ...(settings.logFile ? { file: settings.logFile } : {}),
  });
  const worker = new ServingWorker(settings, logger);
  process.title = 'metadata-proxy-daemon worker';
  process.on('message', (message: WorkerRequest, handle: unknown) => {
    void worker.handle(message, handle).then((reply) => process.send?.(reply));
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
