/*
 * The last verified answer per lookup, for `[cache] serve_stale_on_outage`: while the lookup service is
 * unreachable, an instance whose port was looked up before is answered from what neutron-server last
 * said, instead of 503 for every instance of the node until it is back (port -> instance mappings almost
 * never change). The danger is LP#1868867's: a stale mapping hands one instance's metadata to another
 * that now has the address. So an answer is kept only as long as nothing contradicts it:
 *
 * - it is dropped when a lookup finds no port (or several) with that address on its network: the port
 *   was deleted or the address released;
 * - it is dropped when any lookup, by whatever key (network or router mode), finds that address on that
 *   network on another port: the address moved;
 * - it is dropped when Nova answered 404 for the instance it names (the handler's re-lookup);
 * - it is never served older than max age, counted from the last lookup that confirmed it.
 *
 * Every answer served from here is marked (staleAgeMs on the identity: the request's log line and the
 * metrics show it). Off by default; docs/security.md says what it trades.
 */
import type { InstanceIdentity, LookupQuery } from '@nmp/common';

export interface LastKnownSettings {
  /** Oldest confirmation an answer may be served on (ms). */
  readonly maxAgeMs: number;
  /** Answers kept at most (least recently confirmed dropped first). */
  readonly maxEntries: number;
}

interface Known {
  readonly identity: InstanceIdentity;
  readonly confirmedAt: number;
  /** `<network>|<address>`: where the port was seen with the address. */
  readonly at: string;
}

export type StaleRefusal = 'none' | 'too-old';

export interface LastKnownStats {
  readonly served: number;
  readonly refusedTooOld: number;
  /** Answers dropped because a lookup contradicted them (port gone, address moved, Nova 404). */
  readonly contradicted: number;
  readonly size: number;
}

function addressOf(query: LookupQuery): string {
  return query.mac ?? query.ip;
}

export class LastKnownAnswers {
  readonly #s: LastKnownSettings;
  readonly #byKey = new Map<string, Known>();
  readonly #byPlace = new Map<string, Set<string>>();
  #served = 0;
  #refusedTooOld = 0;
  #contradicted = 0;

  constructor(settings: LastKnownSettings) {
    this.#s = settings;
  }

  get stats(): LastKnownStats {
    return {
      served: this.#served,
      refusedTooOld: this.#refusedTooOld,
      contradicted: this.#contradicted,
      size: this.#byKey.size,
    };
  }

  /** A lookup found `identity` for `key`: it is the answer now, and contradicts others at that place. */
  confirmed(key: string, query: LookupQuery, identity: InstanceIdentity, now: number): void {
    const at = `${identity.networkId ?? query.id}|${addressOf(query)}`;
    const others = this.#byPlace.get(at);
    if (others !== undefined)
      for (const k of [...others]) {
        if (k === key) continue;
        const other = this.#byKey.get(k)!;
        if (other.identity.portId !== identity.portId || other.identity.instanceId !== identity.instanceId) {
          this.#drop(k);
          this.#contradicted++;
        }
      }
    this.#drop(key);
    this.#byKey.set(key, { identity, confirmedAt: now, at });
    const keys = this.#byPlace.get(at) ?? new Set<string>();
    this.#byPlace.set(at, keys);
    keys.add(key);
    while (this.#byKey.size > this.#s.maxEntries) this.#drop(this.#byKey.keys().next().value as string);
  }

  /**
   * A lookup for `key` found no port (or several) with the address on `networks` (the query's network,
   * or the router's): whatever was known there is gone.
   */
  refuted(key: string, query: LookupQuery, networks: readonly string[]): void {
    if (this.#drop(key)) this.#contradicted++;
    const address = addressOf(query);
    for (const net of networks) {
      const keys = this.#byPlace.get(`${net}|${address}`);
      if (keys === undefined) continue;
      for (const k of [...keys]) {
        this.#drop(k);
        this.#contradicted++;
      }
    }
  }

  /** The answer for `key` was doubted (Nova does not know its instance): never serve it again. */
  forget(key: string): void {
    if (this.#drop(key)) this.#contradicted++;
  }

  /** Whether `identity` is still what is known for `key` (no lookup has contradicted it since). */
  holds(key: string, identity: InstanceIdentity): boolean {
    const known = this.#byKey.get(key);
    return (
      known !== undefined &&
      known.identity.portId === identity.portId &&
      known.identity.instanceId === identity.instanceId
    );
  }

  /** The answer to serve during an outage, marked with its age; or why there is none. */
  answer(key: string, now: number): InstanceIdentity | StaleRefusal {
    const known = this.#byKey.get(key);
    if (known === undefined) return 'none';
    const ageMs = now - known.confirmedAt;
    if (ageMs > this.#s.maxAgeMs) {
      this.#refusedTooOld++;
      return 'too-old';
    }
    this.#served++;
    return { ...known.identity, cached: true, staleAgeMs: ageMs };
  }

  clear(): void {
    this.#byKey.clear();
    this.#byPlace.clear();
  }

  #drop(key: string): boolean {
    const known = this.#byKey.get(key);
    if (known === undefined) return false;
    this.#byKey.delete(key);
    const keys = this.#byPlace.get(known.at);
    keys?.delete(key);
    if (keys?.size === 0) this.#byPlace.delete(known.at);
    return true;
  }
}
