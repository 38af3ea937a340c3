/*
 * Readiness: the agent is ready when Nova and the resolver (Neutron behind the port cache, or the
 * inventory) both answered within the readiness window. "Answered" means an HTTP answer below 500 from
 * Nova (a 403 or 404 is Nova working) and a lookup the resolver completed without the cache (found or
 * not found) - Neutron or Keystone failing does not count.
 *
 * Traffic keeps the times fresh at no cost. An idle agent would go stale, so a check that finds a time
 * older than the window probes that upstream first (GET / on Nova; a lookup that cannot match on the
 * resolver) - at most one probe per upstream at a time, bounded by the probe timeout.
 *
 * A resolver that knows it cannot work (resolver = rpc without a broker connection) is not ready at once,
 * however recent its last answer: cached answers may still be served, but new instances would get 503.
 */
import { MetadataError } from '@nmp/common';

export interface ReadinessOptions {
  /** How recent an answer must be (ms). */
  windowMs: number;
  /** Longest a probe may take (ms). */
  readonly probeTimeoutMs: number;
  /** Resolves when Nova gave an HTTP answer below 500 (and must call markNova, or the caller does). */
  readonly probeNova: (timeoutMs: number) => Promise<void>;
  /** Resolves when the resolver answered (found or not found) without its cache. */
  readonly probeResolver: (timeoutMs: number) => Promise<void>;
  /**
   * A reason the resolver cannot work right now whatever its recent answers say (resolver = rpc: no broker
   * connection; resolver = ovn: the Southbound is not connected and answers come from a stale copy), or
   * undefined. Checked on every readiness check; costs nothing otherwise.
   */
  readonly resolverHealth?: () => string | undefined;
  readonly now?: () => number;
}

export interface UpstreamCheck {
  readonly ok: boolean;
  /** Epoch ms of the last answer, 0 for never. */
  readonly lastAnswer: number;
  /** Why not, when not ok. */
  readonly reason?: string;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly nova: UpstreamCheck;
  readonly resolver: UpstreamCheck;
  readonly stopping: boolean;
}

type Which = 'nova' | 'resolver';

export class Readiness {
  readonly #o: ReadinessOptions;
  readonly #now: () => number;
  #nova = 0;
  #resolver = 0;
  /** The last failure seen (described only when a check reports it). */
  #novaError: unknown;
  #resolverError: unknown;
  readonly #probes = new Map<Which, Promise<void>>();
  /** Set when the agent starts stopping: not ready any more, whatever the upstreams say. */
  stopping = false;

  constructor(options: ReadinessOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  set windowMs(ms: number) {
    this.#o.windowMs = ms;
  }

  get windowMs(): number {
    return this.#o.windowMs;
  }

  markNova(): void {
    this.#nova = this.#now();
  }

  markResolver(): void {
    this.#resolver = this.#now();
  }

  /** Nova could not be reached (kept for the reason /readyz gives). */
  novaFailed(err: unknown): void {
    this.#novaError = err;
  }

  /** The resolver could not answer (Neutron or Keystone down). */
  resolverFailed(err: unknown): void {
    this.#resolverError = err;
  }

  get lastAnswer(): { nova: number; resolver: number } {
    return { nova: this.#nova, resolver: this.#resolver };
  }

  async check(): Promise<ReadinessReport> {
    const now = this.#now();
    const stale: Promise<void>[] = [];
    if (now - this.#nova > this.#o.windowMs) stale.push(this.#probe('nova'));
    // No probe that is known to fail (it would only make /readyz wait for its timeout).
    if (now - this.#resolver > this.#o.windowMs && this.#o.resolverHealth?.() === undefined)
      stale.push(this.#probe('resolver'));
    await Promise.all(stale);
    const nova = this.#upstream('nova');
    const resolver = this.#upstream('resolver');
    return { ready: !this.stopping && nova.ok && resolver.ok, nova, resolver, stopping: this.stopping };
  }

  #upstream(which: Which): UpstreamCheck {
    const last = which === 'nova' ? this.#nova : this.#resolver;
    const unhealthy = which === 'resolver' ? this.#o.resolverHealth?.() : undefined;
    if (unhealthy !== undefined) return { ok: false, lastAnswer: last, reason: unhealthy };
    const age = this.#now() - last;
    if (last !== 0 && age <= this.#o.windowMs) return { ok: true, lastAnswer: last };
    const error = which === 'nova' ? this.#novaError : this.#resolverError;
    const since = last === 0 ? 'never answered' : `no answer for ${Math.round(age / 1000)} s`;
    return {
      ok: false,
      lastAnswer: last,
      reason: error === undefined ? since : `${since}; last error: ${describeFailure(error)}`,
    };
  }

  #probe(which: Which): Promise<void> {
    const running = this.#probes.get(which);
    if (running) return running;
    const timeout = this.#o.probeTimeoutMs;
    const run = which === 'nova' ? this.#o.probeNova(timeout) : this.#o.probeResolver(timeout);
    const p = withTimeout(run, timeout).then(
      () => {
        if (which === 'nova') {
          this.markNova();
          this.#novaError = undefined;
        } else {
          this.markResolver();
          this.#resolverError = undefined;
        }
      },
      (err: unknown) => {
        if (which === 'nova') this.#novaError = err;
        else this.#resolverError = err;
      },
    );
    const tracked = p.finally(() => this.#probes.delete(which));
    this.#probes.set(which, tracked);
    return tracked;
  }
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((_, reject) => {
    // Not unref'd: whoever awaits the check must get an answer even if nothing else is pending.
    timer = setTimeout(() => reject(new Error(`probe took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

function describeFailure(err: unknown): string {
  if (err instanceof MetadataError) {
    const d = err.details as { cause?: unknown; reason?: unknown };
    const why = d.reason ?? d.cause;
    return why === undefined ? err.code : `${err.code} (${String(why)})`;
  }
  return err instanceof Error ? err.message : String(err);
}
