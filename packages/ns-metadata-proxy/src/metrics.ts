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
 *                                             bad_request, timeout, connections (the proxy's cap),
 *                                             source_connections (the per-source cap), first_byte_timeout
 *                                             (silent connections closed), and the SSRF policy's
 *                                             reasons (token_missing, path_denied...) when it is on
 *   nmp_proxy_connections                     client connections open
 *   nmp_proxy_requests_in_flight              requests being served
 *   nmp_proxy_info{mode,id,version}           always 1 (count() of it is "proxies up" for a scraper)
 *   process_* / nodejs_*                      addProcessMetrics of @nmp/common, when enabled
 */

import {
  AdminListener,
  addProcessMetrics,
  type Counter,
  type Histogram,
  type IdentityMode,
  type Labelled,
  type PassedDescriptor,
  Registry,
} from '@nmp/common';
import { type SsrfRefusalReason, ssrfReasonForCode } from './ssrf/policy.js';

/** The proxy's own refusals; the SSRF policy adds its reasons (token_missing, path_denied...) as strings. */
export type RefusalReason =
  | 'rate_limited'
  | 'too_large'
  | 'bad_request'
  | 'timeout'
  | 'connections'
  | 'source_connections'
  | 'first_byte_timeout';

export const REFUSAL_REASONS: readonly RefusalReason[] = [
  'rate_limited',
  'too_large',
  'bad_request',
  'timeout',
  'connections',
  'source_connections',
  'first_byte_timeout',
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
    case 'MDP_ERR_TOO_MANY_SOURCE_CONNECTIONS':
      return 'source_connections';
    case 'MDP_ERR_FIRST_BYTE_TIMEOUT':
      return 'first_byte_timeout';
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
  /** Network, router or OVN mode and its id, as labels of nmp_proxy_info; `daemon` (no id) for the daemon. */
  readonly mode?: IdentityMode | 'daemon';
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
  readonly #clientGone: Counter;

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
      help: 'Requests or connections the proxy refused itself, by reason: rate_limited (429), too_large (413/431), bad_request (400), timeout (408), connections (connection limit), source_connections (per-source connection limit), first_byte_timeout (connection closed before its first byte), and the SSRF policy reasons when it is on',
      labelNames: ['reason'],
    });
    for (const reason of [...REFUSAL_REASONS, ...(options.extraReasons ?? [])]) this.#reasonChild(reason);
    this.#clientGone = registry.counter({
      name: 'nmp_proxy_client_gone_total',
      help: 'Requests not forwarded to the agent because the instance had already closed its connection (MDP_ERR_CLIENT_GONE)',
    });
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

  /** A request was dropped before forwarding: its instance had closed the connection. */
  clientGone(): void {
    this.#clientGone.inc();
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

/** /metrics, /healthz and /readyz on a UNIX socket (@nmp/common's AdminListener). */
export class ProxyAdminServer {
  readonly #o: ProxyAdminServerOptions;
  readonly #listener: AdminListener;

  constructor(options: ProxyAdminServerOptions) {
    this.#o = options;
    this.#listener = new AdminListener({
      metrics: options.metrics,
      ready: () => {
        const reason = options.notReady?.();
        return reason === undefined
          ? { ready: true, text: 'ready\n' }
          : { ready: false, text: `not ready: ${reason}\n` };
      },
    });
  }

  get socketPath(): string {
    return this.#o.socketPath;
  }

  /** Listen, or serve the socket a predecessor handed over (see handover.ts). */
  listen(inheritedFd?: number): Promise<void> {
    return this.#listener.listenUnix(this.#o.socketPath, 'admin_socket', this.#o.mode ?? 0o600, inheritedFd);
  }

  /** Its listening descriptor, for a hand-over. */
  descriptors(): PassedDescriptor[] {
    return this.#listener.descriptors();
  }

  /** `keepPaths` after a hand-over: the socket file is the successor's. */
  close(options: { keepPaths?: boolean } = {}): Promise<void> {
    return this.#listener.close(options);
  }
}
