/*
 * The production resolver: asks Neutron which port owns the source address (reference.md §3.3, over the
 * REST API instead of RPC).
 *   network mode: GET /v2.0/ports?network_id=<id>&fixed_ips=ip_address=<ip>   (mac_address=<mac> for
 *                 link-local IPv6)
 *   router mode:  the router's interface ports (device_id=<router>, device_owner=<router interface
 *                 owners>) give its networks - cached for router_cache_ttl - then the same port query over
 *                 all of those networks.
 * The match rule is pickPort's, shared with the inventory resolver. The answer for one address is not
 * cached here (CachingResolver does that); only router -> networks is.
 *
 * Every lookup has one deadline (the configured timeout) covering the token, the router and the port
 * calls, so a slow Neutron costs the instance at most that long before a 503.
 */
import {
  type InstanceIdentity,
  type InstanceResolver,
  type Logger,
  type LookupQuery,
  MetadataError,
  type ResolveOptions,
  ROUTER_INTERFACE_OWNERS,
} from '@nmp/common';
import { ExpiringLru } from '../resolver/caching-resolver.js';
import { type NeutronPort, pickPort } from '../resolver/port-match.js';
import { describe, isUnavailable, type KeystoneClient } from './keystone-session.js';
import type { NeutronPortClient, PortFilters } from './port-client.js';
import type { UpstreamHttp } from './upstream-http.js';

export interface NeutronResolverSettings {
  /** Deadline of one lookup, all upstream calls included (ms). */
  readonly timeoutMs: number;
  /** How long a router's network list is reused (ms). */
  readonly routerCacheTtlMs: number;
  /** Routers whose network list is kept at most. */
  readonly routerCacheSize: number;
  /**
   * A lookup that finds nothing through a cached router network list re-reads the list (a network may
   * have just been attached) if the list is at least this old (ms).
   */
  readonly routerRecheckAfterMs: number;
}

export interface NeutronResolverStats {
  readonly portLookups: number;
  readonly routerLookups: number;
  readonly routerCacheHits: number;
  readonly tokensIssued: number;
  readonly reauthentications: number;
  readonly failures: number;
}

interface RouterNetworks {
  readonly networks: readonly string[];
  readonly fetchedAt: number;
  readonly fromCache: boolean;
}

const ROUTER_FIELDS: readonly string[] = ['network_id'];

export class NeutronResolver implements InstanceResolver {
  readonly #http: UpstreamHttp;
  readonly #keystone: KeystoneClient;
  readonly #ports: NeutronPortClient;
  readonly #log: Logger;
  readonly #settings: NeutronResolverSettings;
  readonly #routers: ExpiringLru<string, { networks: readonly string[]; fetchedAt: number }>;
  readonly #routerFlights = new Map<string, Promise<RouterNetworks>>();
  #routerSeq = 0;
  #healthy = true;
  #portLookups = 0;
  #routerLookups = 0;
  #routerCacheHits = 0;
  #failures = 0;

  constructor(
    http: UpstreamHttp,
    keystone: KeystoneClient,
    ports: NeutronPortClient,
    settings: NeutronResolverSettings,
    log: Logger,
  ) {
    this.#http = http;
    this.#keystone = keystone;
    this.#ports = ports;
    this.#settings = settings;
    this.#log = log;
    this.#routers = new ExpiringLru(settings.routerCacheSize);
  }

  get stats(): NeutronResolverStats {
    return {
      portLookups: this.#portLookups,
      routerLookups: this.#routerLookups,
      routerCacheHits: this.#routerCacheHits,
      tokensIssued: this.#keystone.stats.tokensIssued,
      reauthentications: this.#ports.stats.reauthentications,
      failures: this.#failures,
    };
  }

  async resolve(query: LookupQuery, options?: ResolveOptions): Promise<InstanceIdentity> {
    const deadline = Date.now() + this.#settings.timeoutMs;
    try {
      const identity =
        query.mode === 'network'
          ? pickPort(await this.#portsOn([query.id], query, deadline), query)
          : await this.#resolveOnRouter(query, options?.noCache === true, deadline);
      this.#up();
      return identity;
    } catch (err) {
      if (isUnavailable(err)) this.#down(err);
      else if (err instanceof MetadataError) this.#up();
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#routers.clear();
    await this.#http.close();
  }

  async #resolveOnRouter(query: LookupQuery, noCache: boolean, deadline: number): Promise<InstanceIdentity> {
    const router = await this.#routerNetworks(query.id, noCache, deadline);
    try {
      return pickPort(await this.#portsOn(router.networks, query, deadline), query);
    } catch (err) {
      // Not found through a remembered network list: the router may have gained an interface since.
      const stale = Date.now() - router.fetchedAt >= this.#settings.routerRecheckAfterMs;
      if (
        !(err instanceof MetadataError) ||
        err.code !== 'MDA_ERR_PORT_NOT_FOUND' ||
        !router.fromCache ||
        !stale
      )
        throw err;
      const fresh = await this.#routerNetworks(query.id, true, deadline);
      if (sameSet(fresh.networks, router.networks)) throw err;
      return pickPort(await this.#portsOn(fresh.networks, query, deadline), query);
    }
  }

  /** Ports on `networks` with the query's address, re-checked here in case Neutron ignored a filter. */
  async #portsOn(networks: readonly string[], query: LookupQuery, deadline: number): Promise<NeutronPort[]> {
    if (networks.length === 0) return [];
    const filters: Array<readonly [string, string]> = networks.map((n) => ['network_id', n] as const);
    if (query.mac !== undefined) filters.push(['mac_address', query.mac]);
    else filters.push(['fixed_ips', `ip_address=${query.ip}`]);
    this.#portLookups++;
    const ports = await this.#ports.list(filters, deadline);
    const wanted = new Set(networks);
    return ports.filter(
      (p) =>
        wanted.has(p.network_id) &&
        (query.mac !== undefined
          ? p.mac_address?.toLowerCase() === query.mac
          : (p.fixed_ips ?? []).some((f) => f.ip_address === query.ip)),
    );
  }

  /** The networks a router has interfaces on: cached, and one Neutron call per router at a time. */
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
    const filters: PortFilters = [
      ['device_id', router],
      ...ROUTER_INTERFACE_OWNERS.map((o) => ['device_owner', o] as const),
    ];
    this.#routerLookups++;
    const p = this.#ports.list(filters, deadline, ROUTER_FIELDS).then(
      (ports) => {
        const networks = [
          ...new Set(ports.map((x) => x.network_id).filter((n) => typeof n === 'string' && n)),
        ];
        const fetchedAt = Date.now();
        // An empty list is kept only briefly: it usually means the router is still being wired up.
        const ttl =
          networks.length > 0
            ? this.#settings.routerCacheTtlMs
            : Math.min(1000, this.#settings.routerCacheTtlMs);
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
    if (!this.#healthy) return;
    this.#healthy = false;
    // One line per outage, not one per request: a boot storm against a dead Neutron must not flood the log.
    this.#log.error({ ...describe(err) }, 'neutron lookups failing; instances get 503 until it recovers');
  }

  #up(): void {
    if (this.#healthy) return;
    this.#healthy = true;
    this.#log.info({ upstream: 'neutron' }, 'neutron lookups working again');
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}
