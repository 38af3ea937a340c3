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
import type { RpcClient } from './rpc-client.js';

/** neutron_lib topics.PLUGIN. */
export const PLUGIN_TOPIC = 'q-plugin';
/** MetadataPluginAPI's version; its namespace (RPC_NAMESPACE_METADATA) is None. */
export const METADATA_API_VERSION = '1.0';

export type RpcResolverSettings = PortResolverSettings;
export type RpcResolverStats = PortResolverStats;

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

/** get_ports calls over the agent's one broker connection. */
class RpcPortSource implements PortSource {
  readonly #rpc: RpcClient;
  readonly #onClose: () => Promise<void>;
  readonly link: SourceLink | undefined;

  constructor(rpc: RpcClient, onClose: () => Promise<void>, link?: SourceLink) {
    this.#rpc = rpc;
    this.#onClose = onClose;
    this.link = link;
  }

  portsWithAddress(
    query: LookupQuery,
    networks: readonly string[],
    deadline: number,
  ): Promise<NeutronPort[]> {
    return this.#getPorts(addressFilters(query, networks), deadline);
  }

  routerInterfaces(router: string, deadline: number): Promise<NeutronPort[]> {
    return this.#getPorts(routerFilters(router), deadline);
  }

  close(): Promise<void> {
    return this.#onClose();
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
  /** `link`: the broker connection (brokerLink); while it is known down, lookups fail fast. */
  constructor(
    rpc: RpcClient,
    settings: RpcResolverSettings,
    log: Logger,
    onClose: () => Promise<void>,
    link?: SourceLink,
  ) {
    super(new RpcPortSource(rpc, onClose, link), settings, log, {
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
  }
}
