/*
 * The proxy's Prometheus metrics and its admin listener.
 *
 * The proxy runs inside a tenant namespace (qdhcp-/qrouter-), so its admin listener is a UNIX socket
 * only: a path in the host's filesystem that no instance can address over the network. There is
 * deliberately no TCP option here.
 *
 * Hot path: one counter increment and one histogram observation per request on children looked up once
 * (per status, the first time it is seen); a refusal adds one increment. Connection figures are read when
 * Prometheus scrapes.
 *
 * Families:
 *   nmp_proxy_requests_total{status}          requests answered (ours and the agent's), by HTTP status
 *   nmp_proxy_request_duration_seconds        arrival to last byte, every request
 *   nmp_proxy_refused_total{reason}           refused by the proxy itself: rate_limited, too_large,
 *                                             bad_request, timeout, connections, and the SSRF policy's
 *                                             reasons (token_missing, path_denied...) when it is on
 *   nmp_proxy_connections                     client connections open
 *   nmp_proxy_requests_in_flight              requests being served
 *   nmp_proxy_info{mode,id,version}           always 1 (count() of it is "proxies up" for a scraper)
 *   process_* / nodejs_*                      addProcessMetrics of @nmp/common, when enabled
 */

import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { addProcessMetrics, type Counter, type Histogram, type Labelled, Registry } from '@nmp/common';
import type { ProxyMode } from './header-policy.js';
import { type SsrfRefusalReason, ssrfReasonForCode } from './ssrf-policy.js';

/** The proxy's own refusals; the SSRF policy adds its reasons (token_missing, path_denied...) as strings. */
export type RefusalReason = 'rate_limited' | 'too_large' | 'bad_request' | 'timeout' | 'connections';

export const REFUSAL_REASONS: readonly RefusalReason[] = [
  'rate_limited',
  'too_large',
  'bad_request',
  'timeout',
  'connections',
];

/** Which refusal an error code of ours is (undefined: not a refusal, e.g. the agent failed). */
export function refusalReason(code: string | undefined): RefusalReason | SsrfRefusalReason | undefined {
  switch (code) {
    case 'MDP_ERR_RATE_LIMITED':
      return 'rate_limited';
    case 'MDP_ERR_HEADERS_TOO_LARGE':
    case 'MDP_ERR_BODY_TOO_LARGE':
      return 'too_large';
    case 'MDP_ERR_BAD_REQUEST':
    case 'MDP_ERR_ABSOLUTE_TARGET':
      return 'bad_request';
    case 'MDP_ERR_REQUEST_TIMEOUT':
      return 'timeout';
    case 'MDP_ERR_TOO_MANY_CONNECTIONS':
      return 'connections';
    default:
      return ssrfReasonForCode(code);
  }
}

/** Seconds: a cached answer takes about a millisecond end to end, the upstream timeout is 32 s. */
export const PROXY_LATENCY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 32,
];

const COMMON_STATUSES = [200, 400, 404, 408, 413, 429, 431, 500, 502, 503, 504];

export interface ProxyMetricsOptions {
  /** Network, router or OVN mode and its id, as labels of nmp_proxy_info. */
  readonly mode?: ProxyMode;
  readonly id?: string;
  readonly version?: string;
  /** Add the process and Node.js metrics (CPU, memory, file descriptors, event loop lag, heap). */
  readonly defaultMetrics?: boolean;
  /** More refusal reasons to show at zero from the start (e.g. the SSRF policy's SSRF_REFUSAL_REASONS). */
  readonly extraReasons?: readonly string[];
}

/** Figures read at scrape time. */
export interface ProxyMetricSources {
  readonly connections?: () => number;
  readonly inFlight?: () => number;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  #sources: ProxyMetricSources = {};
  readonly #requests: Labelled<Counter, readonly ['status']>;
  readonly #byStatus = new Map<number, Counter>();
  readonly #duration: Histogram;
  readonly #refusedCounter: Labelled<Counter, readonly ['reason']>;
  readonly #refused = new Map<string, Counter>();

  constructor(options: ProxyMetricsOptions = {}) {
    const registry = this.registry;
    if (options.defaultMetrics) addProcessMetrics(registry);
    this.#requests = registry.counter({
      name: 'nmp_proxy_requests_total',
      help: "Requests answered, by HTTP status (the proxy's own refusals and errors included)",
      labelNames: ['status'],
    });
    for (const status of COMMON_STATUSES) this.#statusChild(status);
    this.#duration = registry.histogram({
      name: 'nmp_proxy_request_duration_seconds',
      help: 'Time from a request arriving to the last byte of its answer',
      buckets: PROXY_LATENCY_BUCKETS,
    });
    this.#refusedCounter = registry.counter({
      name: 'nmp_proxy_refused_total',
      help: 'Requests or connections the proxy refused itself, by reason: rate_limited (429), too_large (413/431), bad_request (400), timeout (408), connections (connection limit), and the SSRF policy reasons when it is on',
      labelNames: ['reason'],
    });
    for (const reason of [...REFUSAL_REASONS, ...(options.extraReasons ?? [])]) this.#reasonChild(reason);
    registry.gauge({
      name: 'nmp_proxy_connections',
      help: 'Client connections open',
      value: () => this.#sources.connections?.() ?? 0,
    });
    registry.gauge({
      name: 'nmp_proxy_requests_in_flight',
      help: 'Requests being served',
      value: () => this.#sources.inFlight?.() ?? 0,
    });
    registry
      .gauge({
        name: 'nmp_proxy_info',
        help: 'Always 1; labels say what this proxy serves (count() over them is the number of proxies up)',
        labelNames: ['mode', 'id', 'version'],
      })
      .labels(options.mode ?? '', options.id ?? '', options.version ?? 'unknown')
      .set(1);
  }

  setSources(sources: ProxyMetricSources): void {
    this.#sources = sources;
  }

  /** One request finished with this status after `seconds`. */
  request(status: number, seconds: number): void {
    (this.#byStatus.get(status) ?? this.#statusChild(status)).inc();
    this.#duration.observe(seconds);
  }

  /** The proxy refused a request or a connection itself (one of REFUSAL_REASONS, or an SSRF reason). */
  refused(reason: string): void {
    (this.#refused.get(reason) ?? this.#reasonChild(reason)).inc();
  }

  /** Count a refusal from one of our error codes; other codes (agent failures) are not refusals. */
  refusedFor(code: string | undefined): void {
    const reason = refusalReason(code);
    if (reason !== undefined) (this.#refused.get(reason) ?? this.#reasonChild(reason)).inc();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition format. */
  render(): Promise<string> {
    return this.registry.render();
  }

  #reasonChild(reason: string): Counter {
    const child = this.#refusedCounter.labels(reason);
    this.#refused.set(reason, child);
    return child;
  }

  #statusChild(status: number): Counter {
    const child = this.#requests.labels(status);
    this.#byStatus.set(status, child);
    return child;
  }
}

export interface ProxyAdminServerOptions {
  /** Where to listen; the directory is created. An existing socket nobody listens on is replaced. */
  readonly socketPath: string;
  readonly metrics: ProxyMetrics;
  /** File mode of the socket (default 0600: only the owner, usually root or the proxy user, connects). */
  readonly mode?: number;
  /** /readyz: undefined when ready, else the reason (default: always ready once listening). */
  readonly notReady?: () => string | undefined;
}

/** /metrics, /healthz and /readyz on a UNIX socket. */
export class ProxyAdminServer {
  readonly #o: ProxyAdminServerOptions;
  readonly #server: Server;

  constructor(options: ProxyAdminServerOptions) {
    this.#o = options;
    this.#server = createServer({ requestTimeout: 10_000, headersTimeout: 10_000 }, this.#handle);
    this.#server.keepAliveTimeout = 5_000;
  }

  get socketPath(): string {
    return this.#o.socketPath;
  }

  async listen(): Promise<void> {
    const path = this.#o.socketPath;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await removeStaleSocket(path);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(new Error(`admin socket ${path}: cannot listen: ${err.code ?? err.message}`));
      this.#server.once('error', onError);
      this.#server.listen({ path }, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    await chmod(path, this.#o.mode ?? 0o600);
  }

  async close(): Promise<void> {
    if (this.#server.listening) {
      await new Promise<void>((resolve) => {
        this.#server.close(() => resolve());
        this.#server.closeAllConnections();
      });
      await unlink(this.#o.socketPath).catch(() => {});
    }
  }

  readonly #handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'only GET and HEAD\n');
      return;
    }
    if (path === '/metrics') {
      this.#o.metrics.render().then(
        (text) => send(res, 200, text, this.#o.metrics.contentType),
        () => send(res, 500, 'metrics unavailable\n'),
      );
      return;
    }
    if (path === '/healthz') {
      send(res, 200, 'ok\n');
      return;
    }
    if (path === '/readyz') {
      const reason = this.#o.notReady?.();
      send(
        res,
        reason === undefined ? 200 : 503,
        reason === undefined ? 'ready\n' : `not ready: ${reason}\n`,
      );
      return;
    }
    send(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
  };
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Remove a socket left by a dead process; never a live one, never anything that is not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new Error(`admin socket ${path} exists and is not a socket; refusing to remove it`);
  const live = await new Promise<boolean>((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new Error(`admin socket ${path}: another process is listening there`);
  await unlink(path);
}
