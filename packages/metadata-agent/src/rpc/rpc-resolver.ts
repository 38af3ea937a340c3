/*
 * resolver = rpc: the same questions neutron's own metadata agent asks neutron-server, on the same wire
 * (reference.md §3.3, §14): `get_ports` calls on topic q-plugin, version 1.0, no namespace, with exactly
 * the filters of neutron's MetadataProxyHandler, keys in its order:
 *
 *   network mode:    {"fixed_ips": {"ip_address": [ip]}, "network_id": [nid]}
 *                    {"mac_address": [mac], "network_id": [nid]}         (link-local IPv6, by EUI-64 MAC)
 *   router mode, 1:  {"device_id": [rid], "device_owner": [<the three router interface owners>]}
 *   router mode, 2:  the network-mode filters with "network_id": <the networks of call 1>
 *
 * The answer (full port dicts) goes through pickPort, shared with every resolver, after a re-check that
 * each port really is on one of the networks and has the address (a server that ignored a filter must
 * not hand out another instance's identity). A router's network list is kept for router_cache_ttl, like
 * the REST resolver's; the answer for one address is cached by the CachingResolver in front.
 *
 * One deadline (rpc_lookup_timeout) covers the whole lookup, both router-mode calls and any wait for a
 * broker connection; an outage is logged once, not once per lookup.
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
import type { RpcRequest } from './envelope.js';
import type { RpcClient } from './rpc-client.js';

/** neutron_lib topics.PLUGIN. */
export const PLUGIN_TOPIC = 'q-plugin';
/** MetadataPluginAPI's version; its namespace (RPC_NAMESPACE_METADATA) is None. */
export const METADATA_API_VERSION = '1.0';

export interface RpcResolverSettings {
  readonly timeoutMs: number;
  readonly routerCacheTtlMs: number;
  readonly routerCacheSize: number;
  /** A not-found through a cached router network list at least this old re-reads the list (ms). */
  readonly routerRecheckAfterMs: number;
}

export interface RpcResolverStats {
  readonly portLookups: number;
  readonly routerLookups: number;
  readonly routerCacheHits: number;
  readonly failures: number;
}

export type PortFilters = Record<string, unknown>;

/** neutron's filters for the ports with the query's address on `networks` (key order as neutron's). */
export function addressFilters(query: LookupQuery, networks: readonly string[]): PortFilters {
  return query.mac !== undefined
    ? { mac_address: [query.mac], network_id: [...networks] }
    : { fixed_ips: { ip_address: [query.ip] }, network_id: [...networks] };
}

/** neutron's filters for a router's interface ports. */
export function routerFilters(router: string): PortFilters {
  return { device_id: [router], device_owner: [...ROUTER_INTERFACE_OWNERS] };
}

export function getPortsRequest(filters: PortFilters): RpcRequest {
  return { method: 'get_ports', args: { filters }, version: METADATA_API_VERSION };
}

interface RouterNetworks {
  readonly networks: readonly string[];
  readonly fetchedAt: number;
  readonly fromCache: boolean;
}

export class RpcResolver implements InstanceResolver {
  readonly #rpc: RpcClient;
  readonly #s: RpcResolverSettings;
  readonly #log: Logger;
  readonly #routers: ExpiringLru<string, { networks: readonly string[]; fetchedAt: number }>;
  readonly #routerFlights = new Map<string, Promise<RouterNetworks>>();
  readonly #onClose: () => Promise<void>;
  #routerSeq = 0;
  #healthy = true;
  #portLookups = 0;
  #routerLookups = 0;
  #routerCacheHits = 0;
  #failures = 0;

  constructor(rpc: RpcClient, settings: RpcResolverSettings, log: Logger, onClose: () => Promise<void>) {
    this.#rpc = rpc;
    this.#s = settings;
    this.#log = log;
    this.#onClose = onClose;
    this.#routers = new ExpiringLru(settings.routerCacheSize);
  }

  get stats(): RpcResolverStats {
    return {
      portLookups: this.#portLookups,
      routerLookups: this.#routerLookups,
      routerCacheHits: this.#routerCacheHits,
      failures: this.#failures,
    };
  }

  async resolve(query: LookupQuery, options?: ResolveOptions): Promise<InstanceIdentity> {
    const deadline = Date.now() + this.#s.timeoutMs;
    try {
      const identity =
        query.mode === 'network'
          ? pickPort(await this.#portsOn([query.id], query, deadline), query)
          : await this.#resolveOnRouter(query, options?.noCache === true, deadline);
      this.#up();
      return identity;
    } catch (err) {
      if (err instanceof MetadataError && err.status === 503) this.#down(err);
      else if (err instanceof MetadataError) this.#up();
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#routers.clear();
    await this.#onClose();
  }

  async #resolveOnRouter(query: LookupQuery, noCache: boolean, deadline: number): Promise<InstanceIdentity> {
    const router = await this.#routerNetworks(query.id, noCache, deadline);
    try {
      return pickPort(await this.#portsOn(router.networks, query, deadline), query);
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
      return pickPort(await this.#portsOn(fresh.networks, query, deadline), query);
    }
  }

  async #portsOn(networks: readonly string[], query: LookupQuery, deadline: number): Promise<NeutronPort[]> {
    // neutron asks nothing for a router without interfaces: nothing can match.
    if (networks.length === 0) return [];
    this.#portLookups++;
    const ports = await this.#getPorts(addressFilters(query, networks), deadline);
    const wanted = new Set(networks);
    return ports.filter(
      (p) =>
        wanted.has(p.network_id) &&
        (query.mac !== undefined
          ? p.mac_address?.toLowerCase() === query.mac
          : (p.fixed_ips ?? []).some((f) => f.ip_address === query.ip)),
    );
  }

  async #getPorts(filters: PortFilters, deadline: number): Promise<NeutronPort[]> {
    const result = await this.#rpc.call(PLUGIN_TOPIC, getPortsRequest(filters), deadline);
    if (!Array.isArray(result))
      throw new MetadataError('MDA_ERR_RPC_REMOTE_ERROR', {
        upstream: 'neutron-rpc',
        method: 'get_ports',
        reason: `get_ports answered ${result === null ? 'null' : typeof result}, not a list of ports`,
      });
    return result.filter(
      (p): p is NeutronPort => p !== null && typeof p === 'object' && typeof p.network_id === 'string',
    );
  }

  /** The networks a router has interfaces on: cached, and one call per router at a time. */
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
    const p = this.#getPorts(routerFilters(router), deadline).then(
      (ports) => {
        // neutron keeps the list as is (a network twice when a router has two subnets on it); asking
        // for it once is the same filter.
        const networks = [...new Set(ports.map((x) => x.network_id).filter((n) => n !== ''))];
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
    if (!this.#healthy) return;
    this.#healthy = false;
    // One line per outage, not one per request: a boot storm against a dead broker must not flood the log.
    this.#log.error(
      { code: err.code, ...err.details },
      'port lookups over RPC failing; instances get 503 until neutron-server answers again',
    );
  }

  #up(): void {
    if (this.#healthy) return;
    this.#healthy = true;
    this.#log.info({ upstream: 'neutron-rpc' }, 'port lookups over RPC working again');
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}
