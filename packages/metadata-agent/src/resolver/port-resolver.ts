/*
 * The lookup that both neutron-server resolvers make (reference.md §3.3), whatever the wire: the REST API
 * (resolver = neutron) or neutron's RPC (resolver = rpc). Only how a question reaches neutron-server
 * differs, and that is a PortSource:
 *
 *   network mode: the ports with the source address (or, for link-local IPv6, its EUI-64 MAC) on the
 *                 network.
 *   router mode:  the router's interface ports give its networks - kept for router_cache_ttl, one question
 *                 per router at a time - then the same address question over all of those networks; a
 *                 not-found through a remembered list that is old enough re-reads the list once (the router
 *                 may have gained an interface).
 *
 * Every answer is re-checked here (each port on one of the networks, with the address) before pickPort, the
 * rule shared with every resolver: a server that ignored a filter must not hand out another instance's
 * identity. The answer for one address is not cached here (CachingResolver does that); only router ->
 * networks is. One deadline covers the whole lookup, and an outage is logged once, not once per request.
 *
 * Fail fast: while neutron-server is known unreachable - the source's link says so (no broker
 * connection after a failure), or the last lookup could not connect at all (refused, connect timeout,
 * name resolution, TLS) - a lookup waits at most outageGraceMs for it to come back (a reconnect in
 * progress), then fails at once with the outage's error, instead of holding the instance for the whole
 * deadline. Without a link of its own, one lookup at a time goes on as a probe, with the full deadline,
 * and its outcome ends the outage. A server that is reachable but slow or silent still gets the whole
 * deadline: only a known outage is short-cut.
 */
import {
  type InstanceIdentity,
  type InstanceResolver,
  type Logger,
  type LookupQuery,
  MetadataError,
  type NeutronPort,
  type ResolveOptions,
} from '@nmp/common';
import { ExpiringLru } from './caching-resolver.js';
import { pickPort } from './port-match.js';

/** How the questions reach neutron-server. */
export interface PortSource {
  /** The ports neutron-server has with the query's address (or MAC) on `networks` (never empty). */
  portsWithAddress(query: LookupQuery, networks: readonly string[], deadline: number): Promise<NeutronPort[]>;
  /** The router's interface ports (only their network_id is used). */
  routerInterfaces(router: string, deadline: number): Promise<NeutronPort[]>;
  /** Release connections; lookups in flight fail. */
  close(): Promise<void>;
  /** What the source knows of its way to neutron-server without asking it (the broker connection). */
  readonly link?: SourceLink;
}

export interface SourceLink {
  /** No question can reach neutron-server now, and that is known (not merely: no connection yet). */
  readonly down: boolean;
  /** Resolves the next time the link is up. */
  whenUp(): Promise<void>;
}

/** What an outage of the source looks like, and what the one log line per outage says. */
export interface OutageReporting {
  /** The failure means neutron-server cannot be asked (as opposed to an answer such as not-found). */
  readonly isOutage: (err: unknown) => err is MetadataError;
  readonly upstream: string;
  readonly downMessage: string;
  readonly upMessage: string;
  /** The failure means neutron-server could not be reached at all (no connection); known down until a lookup succeeds. */
  readonly isUnreachable?: (err: MetadataError) => boolean;
  /** The error a lookup gets at once while the link is down (`last`: the outage's latest error, if any). */
  readonly linkDown?: () => MetadataError;
}

export interface PortResolverSettings {
  /** Deadline of one lookup, every call included (ms). */
  readonly timeoutMs: number;
  /** How long a router's network list is reused (ms). */
  readonly routerCacheTtlMs: number;
  /** Routers whose network list is kept at most. */
  readonly routerCacheSize: number;
  /** A not-found through a cached router network list at least this old re-reads the list (ms). */
  readonly routerRecheckAfterMs: number;
  /** While neutron-server is known unreachable, how long a lookup waits for it before failing (ms). */
  readonly outageGraceMs?: number;
}

export interface PortResolverStats {
  readonly portLookups: number;
  readonly routerLookups: number;
  readonly routerCacheHits: number;
  readonly failures: number;
  /** Lookups failed at once because neutron-server was known unreachable. */
  readonly failedFast: number;
}

interface RouterNetworks {
  readonly networks: readonly string[];
  readonly fetchedAt: number;
  readonly fromCache: boolean;
}

export class PortResolver implements InstanceResolver {
  readonly #source: PortSource;
  readonly #s: PortResolverSettings;
  readonly #log: Logger;
  readonly #outage: OutageReporting;
  readonly #routers: ExpiringLru<string, { networks: readonly string[]; fetchedAt: number }>;
  readonly #routerFlights = new Map<string, Promise<RouterNetworks>>();
  #routerSeq = 0;
  #healthy = true;
  #portLookups = 0;
  #routerLookups = 0;
  #routerCacheHits = 0;
  #failures = 0;
  #failedFast = 0;
  /** The last failure that reached nothing (no link of the source's own): known down until an answer. */
  #unreachable: MetadataError | undefined = undefined;
  /** The lookup going on as the probe of an outage (sources without a link). */
  #probe: Promise<unknown> | undefined = undefined;

  constructor(source: PortSource, settings: PortResolverSettings, log: Logger, outage: OutageReporting) {
    this.#source = source;
    this.#s = settings;
    this.#log = log;
    this.#outage = outage;
    this.#routers = new ExpiringLru(settings.routerCacheSize);
  }

  get stats(): PortResolverStats {
    return {
      portLookups: this.#portLookups,
      routerLookups: this.#routerLookups,
      routerCacheHits: this.#routerCacheHits,
      failures: this.#failures,
      failedFast: this.#failedFast,
    };
  }

  resolve(query: LookupQuery, options?: ResolveOptions): Promise<InstanceIdentity> {
    const link = this.#source.link;
    if (link?.down || (link === undefined && this.#unreachable !== undefined))
      return this.#whileUnreachable(query, options);
    return this.#lookup(query, options);
  }

  /** A lookup while neutron-server is known unreachable: the grace, then an answer or 503 at once. */
  async #whileUnreachable(query: LookupQuery, options?: ResolveOptions): Promise<InstanceIdentity> {
    const graceMs = this.#s.outageGraceMs ?? 250;
    const link = this.#source.link;
    if (link) {
      if (await within(link.whenUp(), graceMs)) return this.#lookup(query, options);
      throw this.#failFast(this.#outage.linkDown?.() ?? this.#unreachable);
    }
    if (this.#probe === undefined) {
      // This lookup is the probe: it goes on with the whole deadline whatever this caller waits.
      const probe = this.#lookup(query, options);
      this.#probe = probe;
      const settle = () => {
        if (this.#probe === probe) this.#probe = undefined;
      };
      probe.then(settle, settle);
      // Its own answer when it comes within the grace; else 503 now, and the probe answers nobody.
      probe.catch(() => {});
      if (await within(probe, graceMs)) return probe;
      throw this.#failFast(this.#unreachable);
    }
    await within(
      this.#probe.catch(() => {}),
      graceMs,
    );
    if (this.#unreachable === undefined) return this.#lookup(query, options);
    throw this.#failFast(this.#unreachable);
  }

  #failFast(last: MetadataError | undefined): MetadataError {
    this.#failedFast++;
    this.#failures++;
    const err = last ?? new MetadataError('MDA_ERR_RESOLVER_UNAVAILABLE', { reason: 'known unreachable' });
    return new MetadataError(err.code, { ...err.details, failedFast: true });
  }

  async #lookup(query: LookupQuery, options?: ResolveOptions): Promise<InstanceIdentity> {
    const deadline = Date.now() + this.#s.timeoutMs;
    try {
      const identity =
        query.mode === 'network'
          ? pickPort(await this.#portsOn([query.id], query, deadline), query)
          : await this.#resolveOnRouter(query, options?.noCache === true, deadline);
      this.#up();
      return identity;
    } catch (err) {
      if (this.#outage.isOutage(err)) this.#down(err);
      else if (err instanceof MetadataError) this.#up();
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#routers.clear();
    await this.#source.close();
  }

  async #resolveOnRouter(query: LookupQuery, noCache: boolean, deadline: number): Promise<InstanceIdentity> {
    const router = await this.#routerNetworks(query.id, noCache, deadline);
    try {
      return await this.#pickOn(router.networks, query, deadline);
    } catch (err) {
      // Not found through a remembered network list: the router may have gained an interface since.
      const stale = Date.now() - router.fetchedAt >= this.#s.routerRecheckAfterMs;
      if (
        !(err instanceof MetadataError) ||
        err.code !== 'MDA_ERR_PORT_NOT_FOUND' ||
        !router.fromCache ||
        !stale
      )
        throw err;
      const fresh = await this.#routerNetworks(query.id, true, deadline);
      if (sameSet(fresh.networks, router.networks)) throw err;
      return await this.#pickOn(fresh.networks, query, deadline);
    }
  }

  /** Router mode: the instance on one of `networks`; a not-found says which networks were searched. */
  async #pickOn(
    networks: readonly string[],
    query: LookupQuery,
    deadline: number,
  ): Promise<InstanceIdentity> {
    const ports = await this.#portsOn(networks, query, deadline);
    try {
      return pickPort(ports, query);
    } catch (err) {
      if (err instanceof MetadataError && err.status === 404)
        throw new MetadataError(err.code, { ...err.details, networks: [...networks] });
      throw err;
    }
  }

  /** Ports on `networks` with the query's address, re-checked here in case the server ignored a filter. */
  async #portsOn(networks: readonly string[], query: LookupQuery, deadline: number): Promise<NeutronPort[]> {
    // A router without interfaces: nothing can match, and nothing is asked (neutron would ask everywhere).
    if (networks.length === 0) return [];
    this.#portLookups++;
    const ports = await this.#source.portsWithAddress(query, networks, deadline);
    const wanted = new Set(networks);
    return ports.filter(
      (p) =>
        wanted.has(p.network_id) &&
        (query.mac !== undefined
          ? p.mac_address?.toLowerCase() === query.mac
          : (p.fixed_ips ?? []).some((f) => f.ip_address === query.ip)),
    );
  }

  /** The networks a router has interfaces on: cached, and one question per router at a time. */
  #routerNetworks(router: string, noCache: boolean, deadline: number): Promise<RouterNetworks> {
    const now = Date.now();
    if (!noCache) {
      const slot = this.#routers.get(router, now);
      if (slot !== undefined) {
        this.#routerCacheHits++;
        return Promise.resolve({ ...slot.value, fromCache: true });
      }
      const flight = this.#routerFlights.get(router);
      if (flight !== undefined) return flight;
    }
    const seq = ++this.#routerSeq;
    this.#routerLookups++;
    const p = this.#source.routerInterfaces(router, deadline).then(
      (ports) => {
        // A network twice (a router with two subnets on it) is the same filter: ask for it once.
        const networks = [
          ...new Set(ports.map((x) => x.network_id).filter((n) => typeof n === 'string' && n !== '')),
        ];
        const fetchedAt = Date.now();
        // An empty list is kept only briefly: it usually means the router is still being wired up.
        const ttl = networks.length > 0 ? this.#s.routerCacheTtlMs : Math.min(1000, this.#s.routerCacheTtlMs);
        this.#routers.set(router, { networks, fetchedAt }, ttl, fetchedAt, seq);
        if (this.#routerFlights.get(router) === p) this.#routerFlights.delete(router);
        return { networks, fetchedAt, fromCache: false };
      },
      (err: unknown) => {
        if (this.#routerFlights.get(router) === p) this.#routerFlights.delete(router);
        throw err;
      },
    );
    this.#routerFlights.set(router, p);
    return p;
  }

  #down(err: MetadataError): void {
    this.#failures++;
    this.#unreachable = this.#outage.isUnreachable?.(err) ? err : undefined;
    if (!this.#healthy) return;
    this.#healthy = false;
    // One line per outage, not one per request: a boot storm against a dead upstream must not flood the log.
    this.#log.error({ code: err.code, message: err.message, ...err.details }, this.#outage.downMessage);
  }

  #up(): void {
    this.#unreachable = undefined;
    if (this.#healthy) return;
    this.#healthy = true;
    this.#log.info({ upstream: this.#outage.upstream }, this.#outage.upMessage);
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

/** Whether `p` settled within `ms` (its rejection counts as settled; `p` must not reject unhandled). */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}
