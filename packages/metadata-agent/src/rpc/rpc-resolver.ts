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
 * The lookup itself is PortResolver's, shared with the REST resolver: the answer (full port dicts) is
 * re-checked (each port on one of the networks, with the address: a server that ignored a filter must not
 * hand out another instance's identity) and goes through pickPort; a router's network list is kept for
 * router_cache_ttl; the answer for one address is cached by the CachingResolver in front. One deadline
 * (rpc_lookup_timeout) covers the whole lookup, both router-mode calls and any wait for a broker
 * connection; an outage is logged once, not once per lookup.
 *
 * Coalescing (rpc_lookup_batch_max > 1, lookup-batcher.ts): uncached lookups for the same network list
 * that arrive while a call for it is in flight go out together as one call whose list carries their
 * addresses, `{"fixed_ips": {"ip_address": [ip1, ip2, ...]}, "network_id": [...]}` (likewise MACs, and
 * router mode's call 1 with several routers in device_id): neutron-server's get_ports returns the ports
 * with ANY of them (db_base_plugin_v2._get_ports_query), and each lookup keeps the ports with its own
 * address, re-checked and picked as above. A lone lookup goes out at once, in exactly the shape above.
 */
import {
  type Logger,
  type LookupQuery,
  MetadataError,
  type NeutronPort,
  ROUTER_INTERFACE_OWNERS,
} from '@nmp/common';
import {
  PortResolver,
  type PortResolverSettings,
  type PortResolverStats,
  type PortSource,
  type SourceLink,
} from '../resolver/port-resolver.js';
import type { BrokerConnection } from './broker-connection.js';
import type { RpcRequest } from './envelope.js';
import { type BatchLane, LookupBatcher, type LookupBatcherStats } from './lookup-batcher.js';
import type { RpcClient, RpcObserver } from './rpc-client.js';

/** neutron_lib topics.PLUGIN. */
export const PLUGIN_TOPIC = 'q-plugin';
/** MetadataPluginAPI's version; its namespace (RPC_NAMESPACE_METADATA) is None. */
export const METADATA_API_VERSION = '1.0';

export type RpcResolverSettings = PortResolverSettings;
export type RpcResolverStats = PortResolverStats;

export type PortFilters = Record<string, unknown>;

/** neutron's filters for the ports with the query's address on `networks` (key order as neutron's). */
export function addressFilters(query: LookupQuery, networks: readonly string[]): PortFilters {
  return query.mac !== undefined ? macFilters([query.mac], networks) : ipFilters([query.ip], networks);
}

/** The ports with any of `ips` on `networks` (neutron: `fixed_ips.any(ip_address IN ips)`). */
export function ipFilters(ips: readonly string[], networks: readonly string[]): PortFilters {
  return { fixed_ips: { ip_address: [...ips] }, network_id: [...networks] };
}

/** The ports with any of `macs` on `networks`. */
export function macFilters(macs: readonly string[], networks: readonly string[]): PortFilters {
  return { mac_address: [...macs], network_id: [...networks] };
}

/** neutron's filters for a router's interface ports. */
export function routerFilters(router: string): PortFilters {
  return routersFilters([router]);
}

/** The interface ports of any of `routers`. */
export function routersFilters(routers: readonly string[]): PortFilters {
  return { device_id: [...routers], device_owner: [...ROUTER_INTERFACE_OWNERS] };
}

export function getPortsRequest(filters: PortFilters): RpcRequest {
  return { method: 'get_ports', args: { filters }, version: METADATA_API_VERSION };
}

/** What RpcPortSource needs besides the client: how many addresses (or routers) one get_ports may carry. */
export interface RpcSourceOptions {
  /** rpc_lookup_batch_max: 1 = one address per call (no coalescing). */
  readonly batchMax: number;
  /** Told each lookup call's size (metrics). */
  readonly observer?: Pick<RpcObserver, 'lookupBatch'>;
}

/** The ports of a get_ports answer with `ip` among their fixed IPs. */
function withIp(ports: readonly NeutronPort[], ip: string): NeutronPort[] {
  return ports.filter((p) => (p.fixed_ips ?? []).some((f) => f.ip_address === ip));
}

/** The ports of a get_ports answer with MAC `mac` (neutron compares MACs lower-cased). */
function withMac(ports: readonly NeutronPort[], mac: string): NeutronPort[] {
  return ports.filter((p) => p.mac_address?.toLowerCase() === mac);
}

/**
 * get_ports calls over the agent's one broker connection. With batchMax > 1, uncached lookups that share a
 * filter but for the address (the same network list, IP or MAC; or router interfaces) are coalesced
 * (lookup-batcher.ts): the first goes out at once, those arriving while it is in flight go out together.
 */
class RpcPortSource implements PortSource {
  readonly #rpc: RpcClient;
  readonly #onClose: () => Promise<void>;
  readonly #options: RpcSourceOptions;
  readonly #batcher: LookupBatcher<string> | undefined;
  readonly link: SourceLink | undefined;

  constructor(
    rpc: RpcClient,
    onClose: () => Promise<void>,
    link: SourceLink | undefined,
    options: RpcSourceOptions,
  ) {
    this.#rpc = rpc;
    this.#onClose = onClose;
    this.link = link;
    this.#options = options;
    this.#batcher =
      options.batchMax > 1
        ? new LookupBatcher({
            max: options.batchMax,
            expired: (ms) => rpc.deadlineError('get_ports', PLUGIN_TOPIC, ms),
            ...(options.observer?.lookupBatch
              ? { sent: (lane, size) => options.observer?.lookupBatch?.(lane, size) }
              : {}),
          })
        : undefined;
  }

  get batchStats(): LookupBatcherStats | undefined {
    return this.#batcher?.stats;
  }

  portsWithAddress(
    query: LookupQuery,
    networks: readonly string[],
    deadline: number,
  ): Promise<NeutronPort[]> {
    if (this.#batcher === undefined) {
      this.#options.observer?.lookupBatch?.('address', 1);
      return this.#getPorts(addressFilters(query, networks), deadline);
    }
    const byMac = query.mac !== undefined;
    // The lane: everything in the filter but the address (neutron ANDs the filters, ORs within a list).
    const key = `address|${byMac ? 'mac' : 'ip'}|${networks.join(',')}`;
    const lane = byMac ? this.#macLane(networks) : this.#ipLane(networks);
    return this.#batcher.lookup(key, lane, byMac ? query.mac! : query.ip, deadline);
  }

  routerInterfaces(router: string, deadline: number): Promise<NeutronPort[]> {
    if (this.#batcher === undefined) {
      this.#options.observer?.lookupBatch?.('router', 1);
      return this.#getPorts(routerFilters(router), deadline);
    }
    return this.#batcher.lookup('router|', this.#routerLane, router, deadline);
  }

  close(): Promise<void> {
    return this.#onClose();
  }

  #ipLane(networks: readonly string[]): BatchLane<string> {
    return {
      name: 'address',
      send: (ips, deadline) => this.#getPorts(ipFilters(ips, networks), deadline),
      pick: withIp,
    };
  }

  #macLane(networks: readonly string[]): BatchLane<string> {
    return {
      name: 'address',
      send: (macs, deadline) => this.#getPorts(macFilters(macs, networks), deadline),
      pick: withMac,
    };
  }

  readonly #routerLane: BatchLane<string> = {
    name: 'router',
    send: (routers, deadline) => this.#getPorts(routersFilters(routers), deadline),
    pick: (ports, router) => ports.filter((p) => p.device_id === router),
  };

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
}

/** The broker connection as the lookups see it: down while known to be (fail fast), up again when connected. */
export function brokerLink(broker: BrokerConnection): SourceLink {
  return {
    get down() {
      return broker.knownDown;
    },
    whenUp: () => broker.whenUp(),
  };
}

export class RpcResolver extends PortResolver {
  readonly #source: RpcPortSource;

  /**
   * `link`: the broker connection (brokerLink); while it is known down, lookups fail fast. `source`:
   * rpc_lookup_batch_max (default 1 here: one address per call).
   */
  constructor(
    rpc: RpcClient,
    settings: RpcResolverSettings,
    log: Logger,
    onClose: () => Promise<void>,
    link?: SourceLink,
    source: RpcSourceOptions = { batchMax: 1 },
  ) {
    const ports = new RpcPortSource(rpc, onClose, link, source);
    super(ports, settings, log, {
      isOutage: (err): err is MetadataError => err instanceof MetadataError && err.status === 503,
      upstream: 'neutron-rpc',
      downMessage: 'port lookups over RPC failing; instances get 503 until neutron-server answers again',
      upMessage: 'port lookups over RPC working again',
      linkDown: () =>
        new MetadataError('MDA_ERR_RPC_UNAVAILABLE', {
          upstream: 'neutron-rpc',
          method: 'get_ports',
          reason: 'no connection to RabbitMQ (reconnecting); not waiting for it',
        }),
    });
    this.#source = ports;
  }

  /** The coalescing's counts (undefined with rpc_lookup_batch_max = 1). */
  get batchStats(): LookupBatcherStats | undefined {
    return this.#source.batchStats;
  }
}
