/*
 * The agent's Prometheus metrics (served on the admin listener, never on the proxies' socket).
 *
 * Hot path: a request costs one counter increment and one histogram observation on children looked up
 * once (by mode, and by status the first time a status is seen); an upstream call costs one observation.
 * Everything else (cache, Neutron and connection figures) is read from the owners' own counters when
 * Prometheus scrapes, so it costs the request path nothing.
 *
 * Families (all prefixed nmp_):
 *   nmp_agent_requests_total{mode,status}          requests answered, by mode (network|router|none) and status
 *   nmp_agent_request_duration_seconds{mode}       whole request, arrival to last byte
 *   nmp_agent_requests_in_flight                   requests being served
 *   nmp_agent_proxies_connected                    connections open on the agent socket (proxies' pools)
 *   nmp_upstream_duration_seconds{upstream,outcome} Nova / Neutron / Keystone calls (answered|failed)
 *   nmp_upstream_last_answer_timestamp_seconds{upstream="nova|resolver"}   what /readyz looks at
 *   nmp_port_cache_{hits,negative_hits,misses,coalesced,refreshes,evictions}_total, nmp_port_cache_entries
 *   nmp_port_cache_stale_{answers,refused,dropped}_total (serve_stale_on_outage)
 *   nmp_keystone_tokens_issued_total, nmp_keystone_auth_failures_total, nmp_neutron_reauthentications_total,
 *   nmp_neutron_lookup_failures_total
 *   nmp_agent_config_reloads_total{result}, nmp_agent_config_last_reload_success_timestamp_seconds
 *   nmp_agent_info{version}
 *   process_* and nodejs_* (addProcessMetrics of @nmp/common), when enabled
 */
import {
  addProcessMetrics,
  type Counter,
  type Gauge,
  type Histogram,
  type Labelled,
  type LookupMode,
  Registry,
} from '@nmp/common';
import type { CacheStats } from './resolver/caching-resolver.js';
import type { UpstreamName, UpstreamObserver } from './upstream-observer.js';

/** Request mode as a label: the proxy said network or router, or the request never got that far. */
export type RequestMode = LookupMode | 'none';

const MODES: readonly RequestMode[] = ['network', 'router', 'none'];
const UPSTREAMS: readonly UpstreamName[] = ['nova', 'neutron', 'keystone'];
/** Statuses created at zero, so that rate() and alerts work before the first one happens. */
const COMMON_STATUSES = [200, 400, 403, 404, 500, 502, 503, 504];

/** Seconds; the agent answers in about a millisecond from the cache, Nova in tens of them, timeouts at 30 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** Figures read at scrape time. Each is optional: a resolver without a cache has no cache figures. */
export interface MetricSources {
  readonly connections?: () => number;
  readonly inFlight?: () => number;
  readonly cache?: () => CacheStats;
  readonly neutron?: () => NeutronStats;
  /** Epoch milliseconds of the last answer (0 = never). */
  readonly lastAnswer?: () => { readonly nova: number; readonly resolver: number };
}

interface NeutronStats {
  readonly tokensIssued: number;
  readonly authFailures: number;
  readonly reauthentications: number;
  readonly failures: number;
}

export interface AgentMetricsOptions {
  /** Add the process and Node.js metrics (CPU, memory, file descriptors, event loop lag, heap). */
  readonly defaultMetrics?: boolean;
  readonly version?: string;
}

export class AgentMetrics implements UpstreamObserver {
  readonly registry = new Registry();
  #sources: MetricSources = {};
  readonly #requests: Labelled<Counter, readonly ['mode', 'status']>;
  /** Per mode index: status -> series. */
  readonly #requestChildren: Array<Map<number, Counter>> = MODES.map(() => new Map());
  readonly #durationChildren: Histogram[];
  /** Index: upstream * 2 + (failed ? 1 : 0). */
  readonly #upstreamChildren: Histogram[] = [];
  readonly #reloadOk: Counter;
  /** nmp_agent_client_gone_total by stage: [lookup, nova]. */
  readonly #clientGone: readonly [Counter, Counter];
  readonly #reloadFailed: Counter;
  readonly #lastReload: Gauge;

  constructor(options: AgentMetricsOptions = {}) {
    const registry = this.registry;
    if (options.defaultMetrics) addProcessMetrics(registry);

    this.#requests = registry.counter({
      name: 'nmp_agent_requests_total',
      help: 'Requests answered by the agent, by mode (network, router, or none when the identity headers were unusable) and HTTP status',
      labelNames: ['mode', 'status'],
    });
    const duration = registry.histogram({
      name: 'nmp_agent_request_duration_seconds',
      help: 'Time from a request arriving on the agent socket to the last byte of its answer',
      labelNames: ['mode'],
      buckets: LATENCY_BUCKETS,
    });
    this.#durationChildren = MODES.map((mode) => duration.labels(mode));
    for (const [i, mode] of MODES.entries()) {
      if (mode === 'none') continue;
      for (const status of COMMON_STATUSES) this.#requestChild(i, status);
    }

    const upstream = registry.histogram({
      name: 'nmp_upstream_duration_seconds',
      help: 'Calls to Nova (until its headers), Neutron and Keystone (until the whole answer), by outcome: answered (any HTTP status) or failed (no answer: refused, reset, timeout, TLS)',
      labelNames: ['upstream', 'outcome'],
      buckets: LATENCY_BUCKETS,
    });
    for (const name of UPSTREAMS) {
      for (const outcome of ['answered', 'failed'])
        this.#upstreamChildren.push(upstream.labels(name, outcome));
    }

    const clientGone = registry.counter({
      name: 'nmp_agent_client_gone_total',
      help: 'Requests dropped because the proxy had closed the connection (its instance gone) before the agent started on them (MDA_ERR_CLIENT_GONE), by what was not started: lookup (the port lookup, and so Nova too) or nova (looked up, Nova not asked)',
      labelNames: ['stage'],
    });
    this.#clientGone = [clientGone.labels('lookup'), clientGone.labels('nova')];

    registry.gauge({
      name: 'nmp_agent_requests_in_flight',
      help: 'Requests being served',
      value: () => this.#sources.inFlight?.() ?? 0,
    });
    registry.gauge({
      name: 'nmp_agent_proxies_connected',
      help: "Connections open on the agent's UNIX socket (each proxy keeps a pool of them)",
      value: () => this.#sources.connections?.() ?? 0,
    });
    const lastAnswer = registry.gauge({
      name: 'nmp_upstream_last_answer_timestamp_seconds',
      help: 'When Nova, and the resolver (Neutron or the inventory), last answered (0: never); /readyz needs both recent',
      labelNames: ['upstream'],
      collect: () => {
        const last = this.#sources.lastAnswer?.();
        nova.set((last?.nova ?? 0) / 1000);
        resolver.set((last?.resolver ?? 0) / 1000);
      },
    });
    const nova = lastAnswer.labels('nova');
    const resolver = lastAnswer.labels('resolver');

    // Totals kept by the cache and the Neutron client, read when scraped (0 when there is no such source).
    const cacheCounter = (name: string, help: string, pick: (s: CacheStats) => number) =>
      registry.counter({
        name,
        help,
        value: () => {
          const stats = this.#sources.cache?.();
          return stats ? pick(stats) : 0;
        },
      });
    cacheCounter('nmp_port_cache_hits_total', 'Port lookups answered from the cache', (s) => s.hits);
    cacheCounter(
      'nmp_port_cache_negative_hits_total',
      '"No such port" answers served from the cache',
      (s) => s.negativeHits,
    );
    cacheCounter(
      'nmp_port_cache_misses_total',
      'Port lookups that went to the resolver because nothing usable was cached',
      (s) => s.misses,
    );
    cacheCounter(
      'nmp_port_cache_coalesced_total',
      'Port lookups that waited for an identical lookup already in flight instead of starting one',
      (s) => s.coalesced,
    );
    cacheCounter(
      'nmp_port_cache_refreshes_total',
      'Uncached re-lookups (after Nova answered 404 to a cached identity)',
      (s) => s.refreshes,
    );
    cacheCounter(
      'nmp_port_cache_stale_answers_total',
      'Answers served from the last verified lookup while the lookup service was unreachable (serve_stale_on_outage)',
      (s) => s.stale?.served ?? 0,
    );
    cacheCounter(
      'nmp_port_cache_stale_refused_total',
      'Last verified answers not served during an outage because they were older than stale_max_age',
      (s) => s.stale?.refusedTooOld ?? 0,
    );
    cacheCounter(
      'nmp_port_cache_stale_dropped_total',
      'Last verified answers dropped because a later lookup contradicted them (port gone, address moved, Nova 404)',
      (s) => s.stale?.contradicted ?? 0,
    );
    cacheCounter(
      'nmp_port_cache_contradicted_total',
      'Cached answers dropped before their time because a lookup by another key saw the address gone or on another port (port_cache_max_age > 0)',
      (s) => s.contradicted ?? 0,
    );
    cacheCounter(
      'nmp_port_cache_evictions_total',
      'Entries dropped to respect port_cache_size',
      (s) => s.evictions,
    );
    registry.gauge({
      name: 'nmp_port_cache_entries',
      help: 'Entries held by the port cache',
      value: () => this.#sources.cache?.().size ?? 0,
    });

    const neutronCounter = (name: string, help: string, pick: (s: NeutronStats) => number) =>
      registry.counter({
        name,
        help,
        value: () => {
          const stats = this.#sources.neutron?.();
          return stats ? pick(stats) : 0;
        },
      });
    neutronCounter(
      'nmp_keystone_tokens_issued_total',
      'Keystone tokens issued to the agent (every 201, whether its catalog was usable or not)',
      (s) => s.tokensIssued,
    );
    neutronCounter(
      'nmp_keystone_auth_failures_total',
      'Keystone logins that gave no token (credentials refused, Keystone errors)',
      (s) => s.authFailures,
    );
    neutronCounter(
      'nmp_neutron_reauthentications_total',
      'Times Neutron refused the token (401) and the agent authenticated again',
      (s) => s.reauthentications,
    );
    neutronCounter(
      'nmp_neutron_lookup_failures_total',
      'Lookups that failed because Neutron or Keystone did not answer usefully (the instance got 503)',
      (s) => s.failures,
    );

    const reloads = registry.counter({
      name: 'nmp_agent_config_reloads_total',
      help: 'Configuration reloads (SIGHUP) by result; a failure keeps the running configuration',
      labelNames: ['result'],
    });
    this.#reloadOk = reloads.labels('success');
    this.#reloadFailed = reloads.labels('failure');
    this.#lastReload = registry.gauge({
      name: 'nmp_agent_config_last_reload_success_timestamp_seconds',
      help: 'When the configuration was last loaded successfully (start or SIGHUP)',
    });
    this.#lastReload.setToCurrentTime();
    registry
      .gauge({
        name: 'nmp_agent_info',
        help: 'Always 1; the version label says what runs',
        labelNames: ['version'],
      })
      .labels(options.version ?? 'unknown')
      .set(1);
  }

  /** Where scrape-time figures come from (set once the agent, resolver and readiness exist). */
  setSources(sources: MetricSources): void {
    this.#sources = sources;
  }

  /** One request finished. */
  request(mode: RequestMode, status: number, seconds: number): void {
    const i = mode === 'network' ? 0 : mode === 'router' ? 1 : 2;
    (this.#requestChildren[i]!.get(status) ?? this.#requestChild(i, status)).inc();
    this.#durationChildren[i]!.observe(seconds);
  }

  /** A request was dropped: the proxy had gone before its port lookup, or before its Nova request. */
  clientGone(stage: 'lookup' | 'nova'): void {
    this.#clientGone[stage === 'lookup' ? 0 : 1].inc();
  }

  upstreamAnswered(upstream: UpstreamName, seconds: number): void {
    this.#upstreamChildren[upstreamIndex(upstream) * 2]!.observe(seconds);
  }

  upstreamFailed(upstream: UpstreamName, seconds: number): void {
    this.#upstreamChildren[upstreamIndex(upstream) * 2 + 1]!.observe(seconds);
  }

  reloaded(ok: boolean): void {
    if (ok) {
      this.#reloadOk.inc();
      this.#lastReload.setToCurrentTime();
    } else {
      this.#reloadFailed.inc();
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition format. */
  render(): Promise<string> {
    return this.registry.render();
  }

  #requestChild(modeIndex: number, status: number): Counter {
    const child = this.#requests.labels(MODES[modeIndex]!, status);
    this.#requestChildren[modeIndex]!.set(status, child);
    return child;
  }
}

function upstreamIndex(upstream: UpstreamName): number {
  return upstream === 'nova' ? 0 : upstream === 'neutron' ? 1 : 2;
}
