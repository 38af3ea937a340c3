/*
 * Per-source rate limiting with neutron's [metadata_rate_limiting] semantics (reference.md §2.5): two
 * windows (base and burst), each allowing N requests per window; requests 1..N pass, N+1 and later get
 * 429, and refused requests still count. Like haproxy's http_req_rate, each window is a smoothed sliding
 * counter: the current period's count plus the previous period's, weighted by how much of it still
 * overlaps the window. Unlike haproxy, IPv4 and IPv6 sources are limited at the same time.
 *
 * Cost: O(1) per request (one Map lookup, a delete and re-insert to keep least-recently-seen order, and
 * at most two expired entries swept from the old end). Memory: at most `maxEntries` sources; when full,
 * the least recently seen source is forgotten (it starts again from zero, the lenient direction).
 * Not constructed at all when rate limiting is off.
 */
import { MetadataError } from '@nmp/common';

export interface RateLimiterOptions {
  /** Milliseconds of the base window. */
  readonly baseWindowMs: number;
  /** Requests allowed per source in the base window. */
  readonly baseLimit: number;
  readonly burstWindowMs: number;
  readonly burstLimit: number;
  /** Limit IPv4 sources (default true). */
  readonly ipv4?: boolean;
  /** Limit IPv6 sources (default true). */
  readonly ipv6?: boolean;
  /** Sources remembered at most (default 10,000, haproxy's stick-table size). */
  readonly maxEntries?: number;
  /** Clock in milliseconds (tests). */
  readonly now?: () => number;
}

/** A source's two sliding counters. Plain fields: one hidden class, no per-request allocation. */
class SourceCounters {
  baseStart: number;
  baseCurr = 0;
  basePrev = 0;
  burstStart: number;
  burstCurr = 0;
  burstPrev = 0;
  lastSeen: number;

  constructor(now: number) {
    this.baseStart = now;
    this.burstStart = now;
    this.lastSeen = now;
  }
}

/** The two refusals, built once: denials are the flood case and allocate nothing. */
const DENIED_BASE = new MetadataError('MDP_ERR_RATE_LIMITED', { reason: 'rate-limit', window: 'base' });
const DENIED_BURST = new MetadataError('MDP_ERR_RATE_LIMITED', { reason: 'rate-limit', window: 'burst' });

export class RateLimiter {
  readonly #table = new Map<string, SourceCounters>();
  readonly #baseWindow: number;
  readonly #baseLimit: number;
  readonly #burstWindow: number;
  readonly #burstLimit: number;
  readonly #ipv4: boolean;
  readonly #ipv6: boolean;
  readonly #maxEntries: number;
  /** An idle source is forgotten after this long (both counters are zero by then). */
  readonly #expiry: number;
  readonly #now: () => number;

  constructor(options: RateLimiterOptions) {
    for (const k of ['baseWindowMs', 'baseLimit', 'burstWindowMs', 'burstLimit'] as const) {
      if (!(Number.isFinite(options[k]) && options[k] > 0)) {
        throw new RangeError(`rate limiter: ${k} must be a positive number`);
      }
    }
    this.#baseWindow = options.baseWindowMs;
    this.#baseLimit = options.baseLimit;
    this.#burstWindow = options.burstWindowMs;
    this.#burstLimit = options.burstLimit;
    this.#ipv4 = options.ipv4 ?? true;
    this.#ipv6 = options.ipv6 ?? true;
    this.#maxEntries = Math.max(1, options.maxEntries ?? 10_000);
    this.#expiry = 2 * Math.max(this.#baseWindow, this.#burstWindow);
    this.#now = options.now ?? Date.now;
  }

  /** Sources currently remembered. */
  get size(): number {
    return this.#table.size;
  }

  /**
   * Count one request from `source` (a canonical address: IPv4 dotted, IPv6 with colons) and say whether
   * it may go on: undefined, or the 429 to answer. Bound, so it can be handed over as a function.
   */
  readonly admit = (source: string): MetadataError | undefined => {
    if (source.includes(':') ? !this.#ipv6 : !this.#ipv4) return undefined;
    const now = this.#now();
    const table = this.#table;
    let c = table.get(source);
    if (c === undefined || now - c.lastSeen >= this.#expiry) {
      if (c !== undefined) table.delete(source);
      this.#sweep(now);
      c = new SourceCounters(now);
    } else {
      // Re-insert: the Map's order stays least-recently-seen first.
      table.delete(source);
    }
    table.set(source, c);
    c.lastSeen = now;

    // Base window.
    let elapsed = now - c.baseStart;
    let w = this.#baseWindow;
    if (elapsed >= w) {
      c.basePrev = elapsed >= 2 * w ? 0 : c.baseCurr;
      c.baseCurr = 0;
      c.baseStart = now - (elapsed % w);
      elapsed = now - c.baseStart;
    }
    const base = ++c.baseCurr + Math.floor((c.basePrev * (w - elapsed)) / w);

    // Burst window.
    elapsed = now - c.burstStart;
    w = this.#burstWindow;
    if (elapsed >= w) {
      c.burstPrev = elapsed >= 2 * w ? 0 : c.burstCurr;
      c.burstCurr = 0;
      c.burstStart = now - (elapsed % w);
      elapsed = now - c.burstStart;
    }
    const burst = ++c.burstCurr + Math.floor((c.burstPrev * (w - elapsed)) / w);

    if (base > this.#baseLimit) return DENIED_BASE;
    if (burst > this.#burstLimit) return DENIED_BURST;
    return undefined;
  };

  /** Drop up to two expired sources from the old end, and make room when the table is full. */
  #sweep(now: number): void {
    const table = this.#table;
    for (let i = 0; i < 2 && table.size > 0; i++) {
      const [key, oldest] = table.entries().next().value as [string, SourceCounters];
      if (now - oldest.lastSeen < this.#expiry && table.size < this.#maxEntries) return;
      table.delete(key);
    }
    while (table.size >= this.#maxEntries) {
      table.delete(table.keys().next().value as string);
    }
  }
}
