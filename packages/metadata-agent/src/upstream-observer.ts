/*
 * How the agent's upstream clients (Nova, Keystone, Neutron) report each call, without knowing who
 * listens: metrics observe latencies, readiness notes that an upstream answered. One object with two
 * methods, called once per upstream call; no closure or allocation per call.
 */

export type UpstreamName = 'nova' | 'neutron' | 'keystone';

export interface UpstreamObserver {
  /** An HTTP answer (any status) arrived after `seconds` (to the end of the headers for Nova, of the body otherwise). */
  upstreamAnswered(upstream: UpstreamName, seconds: number, status: number): void;
  /** The call failed without an HTTP answer (refused, reset, timeout, TLS...) after `seconds`. */
  upstreamFailed(upstream: UpstreamName, seconds: number): void;
}

/** The part of readiness an upstream call feeds. */
interface NovaReadiness {
  markNova(): void;
}

/**
 * The agent's observer: latencies to the metrics, and "Nova answered" (any status below 500: a 403 or
 * 404 is Nova working) to readiness. The resolver's readiness comes from completed lookups instead (see
 * handler.ts), because a Neutron answer is only useful once the lookup is done.
 */
export class UpstreamTelemetry implements UpstreamObserver {
  readonly #metrics: UpstreamObserver | undefined;
  readonly #readiness: NovaReadiness | undefined;

  constructor(metrics: UpstreamObserver | undefined, readiness: NovaReadiness | undefined) {
    this.#metrics = metrics;
    this.#readiness = readiness;
  }

  upstreamAnswered(upstream: UpstreamName, seconds: number, status: number): void {
    this.#metrics?.upstreamAnswered(upstream, seconds, status);
    if (upstream === 'nova' && status < 500) this.#readiness?.markNova();
  }

  upstreamFailed(upstream: UpstreamName, seconds: number): void {
    this.#metrics?.upstreamFailed(upstream, seconds);
  }
}
