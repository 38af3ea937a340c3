/*
 * A cache in front of any InstanceResolver (DECISIONS.md, "Cache"): answers live for a TTL (default 5 s) in
 * a size-bounded LRU, "not found" answers for a shorter TTL, failures (503) are never kept, and concurrent
 * misses for one key share one upstream call, so a boot storm of N requests from M instances costs at most
 * M lookups. `resolve(q, {noCache: true})` skips the cache, replaces the entry, and is what the request
 * handler uses once when Nova answers 404 to a cached identity (a reused address must not keep serving the
 * previous instance). Answers served from the cache carry `cached: true`.
 *
 * With `maxAgeMs` ([agent] port_cache_max_age > 0) a positive answer lives `ttlMs` from its last USE
 * rather than from its lookup, so that an instance's whole boot sequence (cloud-init's requests, seconds
 * apart under load) costs one lookup; but never longer than `maxAgeMs` after the lookup that verified it,
 * and only while no later lookup contradicted it: a lookup by another key for the same address (router
 * mode and network mode, MAC and IP) that found no port there or another port drops it at once (the
 * index of verified answers is last-known.ts's, which has the same rules), as do a "not found" answer
 * and the handler's `noCache` re-lookup (Nova 404). A used entry slides only while its instance keeps
 * asking at intervals shorter than `ttlMs`; an address whose instance stopped asking for `ttlMs` expires
 * as it does today. docs/security.md section 8 has the risk (LP#1868867) and the bound.
 *
 * With `stale` ([cache] serve_stale_on_outage), a lookup that fails because the lookup service cannot be
 * reached is answered from the last verified answer for the same key, within its max age and unless a
 * later lookup contradicted it (last-known.ts has the safeguards); such answers carry `staleAgeMs`. A
 * `noCache` lookup (the answer was doubted) is never answered so, and drops the last known answer.
 *
 * Invariants:
 * - An answer obtained by a lookup that started earlier never overwrites one from a lookup that started
 *   later (a slow stale lookup cannot undo a refresh).
 * - A `noCache` caller never joins a lookup it did not ask to be fresh.
 */
import {
  type InstanceIdentity,
  type InstanceResolver,
  type LookupQuery,
  MetadataError,
  type ResolveOptions,
} from '@nmp/common';
import { LastKnownAnswers, type LastKnownSettings, type LastKnownStats } from './last-known.js';

/** Failures that mean the lookup service could not be asked (not an answer such as "no such port"). */
const OUTAGE_CODES: ReadonlySet<string> = new Set([
  'MDA_ERR_RESOLVER_UNAVAILABLE',
  'MDA_ERR_RPC_UNAVAILABLE',
  'MDA_ERR_RPC_TIMEOUT',
]);

export interface CachingResolverOptions {
  /** Lifetime of a positive answer (ms), from its lookup, or from its last use with maxAgeMs. 0 disables caching (misses are still coalesced). */
  readonly ttlMs: number;
  /** Hard bound of a positive answer from the lookup that verified it (ms), while use extends it; 0 or absent: no extension. */
  readonly maxAgeMs?: number;
  /** Lifetime of a "not found" (404) answer (ms). 0 disables negative caching. */
  readonly negativeTtlMs: number;
  /** Most entries kept; the least recently used is dropped first. 0 disables caching. */
  readonly maxEntries: number;
  /** Clock (ms); tests pass a fake one. */
  readonly now?: () => number;
  /** Serve the last verified answer while the lookup service is unreachable (off when absent). */
  readonly stale?: LastKnownSettings;
}

export interface CacheStats {
  /** Answers served from a positive entry. */
  readonly hits: number;
  /** "Not found" answers served from a negative entry. */
  readonly negativeHits: number;
  /** Lookups started because nothing usable was cached (not counting noCache refreshes). */
  readonly misses: number;
  /** Callers that joined a lookup already in flight instead of starting one. */
  readonly coalesced: number;
  /** Lookups started by `noCache`. */
  readonly refreshes: number;
  /** Entries dropped to respect maxEntries. */
  readonly evictions: number;
  /** Entries currently held (expired ones included until touched). */
  readonly size: number;
  /** With maxAgeMs: cached answers dropped because a lookup by another key contradicted them. */
  readonly contradicted?: number;
  /** serve_stale_on_outage: answers served, refused as too old, dropped as contradicted (absent when off). */
  readonly stale?: LastKnownStats;
}

/** The cache key of a query: mode, network/router id, and the MAC when the lookup is by MAC, else the IP. */
export function cacheKey(q: LookupQuery): string {
  return q.mac === undefined ? `${q.mode}|${q.id}|ip=${q.ip}` : `${q.mode}|${q.id}|mac=${q.mac}`;
}

interface Slot<V> {
  readonly value: V;
  /** When it expires; `touch` moves it (never past `limit`). */
  expiresAt: number;
  /** The latest it may ever expire (ms): its lookup's time plus max(ttl, maxAge). */
  readonly limit: number;
  /** Order in which the lookup that produced the value started. */
  readonly seq: number;
}

/**
 * A Map with per-entry expiry, least-recently-used eviction beyond `maxEntries`, and a sequence number
 * per entry so that an older result cannot replace a newer one. Expired entries are dropped when touched.
 */
export class ExpiringLru<K, V> {
  readonly #map = new Map<K, Slot<V>>();
  #evictions = 0;

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.#map.size;
  }

  get evictions(): number {
    return this.#evictions;
  }

  /** The live entry for `key` (and mark it most recently used), or undefined. */
  get(key: K, now: number): Slot<V> | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined) return undefined;
    if (slot.expiresAt <= now) {
      this.#map.delete(key);
      return undefined;
    }
    // Re-insert: Map iteration order is insertion order, so the first key is the least recently used.
    this.#map.delete(key);
    this.#map.set(key, slot);
    return slot;
  }

  /**
   * Store unless a value from a later-started lookup is already there. Returns whether it was stored.
   * `maxAgeMs` (> ttlMs) lets `touch` keep it that long after now; otherwise it lives ttlMs.
   */
  set(key: K, value: V, ttlMs: number, now: number, seq: number, maxAgeMs = 0): boolean {
    if (ttlMs <= 0 || this.maxEntries <= 0) return false;
    const current = this.#map.get(key);
    if (current !== undefined && current.seq > seq && current.expiresAt > now) return false;
    this.#map.delete(key);
    this.#map.set(key, { value, expiresAt: now + ttlMs, limit: now + Math.max(ttlMs, maxAgeMs), seq });
    while (this.#map.size > this.maxEntries) {
      const oldest = this.#map.keys().next().value as K;
      this.#map.delete(oldest);
      this.#evictions++;
    }
    return true;
  }

  /** A live entry was used: it lives `ttlMs` from now, but never past its limit. */
  static touch<V>(slot: Slot<V>, ttlMs: number, now: number): void {
    slot.expiresAt = Math.min(now + ttlMs, slot.limit);
  }

  delete(key: K): void {
    this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }
}

type Entry =
  | { readonly found: true; readonly identity: InstanceIdentity }
  | { readonly found: false; readonly error: MetadataError };

interface Flight {
  readonly promise: Promise<InstanceIdentity>;
  /** Started by a noCache caller. */
  readonly fresh: boolean;
}

export class CachingResolver implements InstanceResolver {
  readonly #inner: InstanceResolver;
  readonly #ttlMs: number;
  readonly #negativeTtlMs: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #entries: ExpiringLru<string, Entry>;
  readonly #flights = new Map<string, Flight>();
  readonly #stale: LastKnownAnswers | undefined;
  /** With maxAgeMs: the verified answers and what contradicts them (last-known.ts's rules). */
  readonly #verified: LastKnownAnswers | undefined;
  #contradicted = 0;
  #seq = 0;
  #hits = 0;
  #negativeHits = 0;
  #misses = 0;
  #coalesced = 0;
  #refreshes = 0;

  constructor(inner: InstanceResolver, options: CachingResolverOptions) {
    this.#inner = inner;
    this.#ttlMs = Math.max(0, options.ttlMs);
    this.#negativeTtlMs = Math.max(0, options.negativeTtlMs);
    this.#maxAgeMs = Math.max(0, options.maxAgeMs ?? 0);
    this.#now = options.now ?? Date.now;
    this.#entries = new ExpiringLru(Math.max(0, options.maxEntries));
    this.#stale = options.stale ? new LastKnownAnswers(options.stale) : undefined;
    this.#verified =
      this.#maxAgeMs > this.#ttlMs && this.#ttlMs > 0
        ? new LastKnownAnswers({ maxAgeMs: this.#maxAgeMs, maxEntries: Math.max(1, options.maxEntries) })
        : undefined;
  }

  get stats(): CacheStats {
    return {
      hits: this.#hits,
      negativeHits: this.#negativeHits,
      misses: this.#misses,
      coalesced: this.#coalesced,
      refreshes: this.#refreshes,
      evictions: this.#entries.evictions,
      size: this.#entries.size,
      ...(this.#verified ? { contradicted: this.#contradicted } : {}),
      ...(this.#stale ? { stale: this.#stale.stats } : {}),
    };
  }

  resolve(query: LookupQuery, options?: ResolveOptions): Promise<InstanceIdentity> {
    const key = cacheKey(query);
    const flight = this.#flights.get(key);
    if (options?.noCache) {
      if (flight?.fresh) {
        this.#coalesced++;
        return flight.promise;
      }
      this.#refreshes++;
      this.#entries.delete(key);
      this.#stale?.forget(key);
      this.#verified?.forget(key);
      return this.#lookup(key, query, true);
    }
    const now = this.#now();
    let slot = this.#entries.get(key, now);
    if (slot?.value.found && this.#verified !== undefined) {
      if (this.#verified.holds(key, slot.value.identity)) ExpiringLru.touch(slot, this.#ttlMs, now);
      else {
        // A lookup by another key saw the address gone or on another port since: not served again.
        this.#entries.delete(key);
        this.#contradicted++;
        slot = undefined;
      }
    }
    if (slot !== undefined) {
      const entry = slot.value;
      if (entry.found) {
        this.#hits++;
        return Promise.resolve(entry.identity);
      }
      this.#negativeHits++;
      return Promise.reject(new MetadataError(entry.error.code, { ...entry.error.details, cached: true }));
    }
    if (flight !== undefined) {
      this.#coalesced++;
      return flight.promise;
    }
    this.#misses++;
    return this.#lookup(key, query, false);
  }

  /** Forget everything cached (in-flight lookups still complete and are stored). */
  clear(): void {
    this.#entries.clear();
    this.#verified?.clear();
  }

  async close(): Promise<void> {
    this.#entries.clear();
    this.#stale?.clear();
    this.#verified?.clear();
    await this.#inner.close();
  }

  #lookup(key: string, query: LookupQuery, fresh: boolean): Promise<InstanceIdentity> {
    const seq = ++this.#seq;
    let upstream: Promise<InstanceIdentity>;
    try {
      upstream = this.#inner.resolve(query, fresh ? { noCache: true } : undefined);
    } catch (err) {
      upstream = Promise.reject(err);
    }
    const promise = upstream.then(
      (identity) => {
        const answer: InstanceIdentity = {
          instanceId: identity.instanceId,
          projectId: identity.projectId,
          cached: false,
          ...(identity.portId !== undefined ? { portId: identity.portId } : {}),
          ...(identity.networkId !== undefined ? { networkId: identity.networkId } : {}),
        };
        const now = this.#now();
        this.#stale?.confirmed(key, query, answer, now);
        this.#verified?.confirmed(key, query, answer, now);
        this.#entries.set(
          key,
          { found: true, identity: { ...answer, cached: true } },
          this.#ttlMs,
          now,
          seq,
          this.#verified !== undefined ? this.#maxAgeMs : 0,
        );
        this.#land(key, promise);
        return answer;
      },
      (err: unknown) => {
        // Only "no such instance" is an answer worth keeping; an outage (503) or a bug is retried next time.
        if (err instanceof MetadataError && err.status === 404) {
          this.#entries.set(key, { found: false, error: err }, this.#negativeTtlMs, this.#now(), seq);
          const networks = (err.details.networks as string[] | undefined) ?? [query.id];
          const refutedOn = query.mode === 'network' ? [query.id] : networks;
          this.#stale?.refuted(key, query, refutedOn);
          this.#verified?.refuted(key, query, refutedOn);
        }
        this.#land(key, promise);
        if (this.#stale && !fresh && err instanceof MetadataError && OUTAGE_CODES.has(err.code)) {
          const last = this.#stale.answer(key, this.#now());
          if (typeof last !== 'string') return last;
        }
        throw err;
      },
    );
    this.#flights.set(key, { promise, fresh });
    return promise;
  }

  #land(key: string, promise: Promise<InstanceIdentity>): void {
    if (this.#flights.get(key)?.promise === promise) this.#flights.delete(key);
  }
}
