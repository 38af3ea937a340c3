/*
 * The contract between the agent and whatever tells it which instance owns an address: a static
 * inventory for development, Neutron's API in production. Failures are MetadataErrors with stable codes
 * (MDA_ERR_PORT_NOT_FOUND, MDA_ERR_PORT_AMBIGUOUS, MDA_ERR_RESOLVER_UNAVAILABLE).
 */
import type { IdentityMode } from './identity-headers.js';

/** How the agent looks an address up: on a network or behind a router (an ovn identity is a network lookup). */
export type LookupMode = Exclude<IdentityMode, 'ovn'>;

export interface LookupQuery {
  readonly mode: LookupMode;
  /** Network id (network mode) or router id (router mode). */
  readonly id: string;
  /** Normalised source IP. */
  readonly ip: string;
  /** Set for IPv6 link-local sources: the lookup is by MAC instead of IP. */
  readonly mac?: string;
}

export interface InstanceIdentity {
  readonly instanceId: string;
  readonly projectId: string;
  /** True when the answer came from a cache (a Nova 404 then earns one uncached re-lookup). */
  readonly cached: boolean;
  /** The port that matched, and its network (when the resolver knows them). */
  readonly portId?: string;
  readonly networkId?: string;
  /**
   * Set when the answer is the last known one, served while the lookup service is unreachable
   * ([cache] serve_stale_on_outage): how long ago a lookup last confirmed it (ms).
   */
  readonly staleAgeMs?: number;
}

export interface ResolveOptions {
  /** Skip (and refresh) any cached answer. */
  readonly noCache?: boolean;
}

export interface InstanceResolver {
  resolve(query: LookupQuery, options?: ResolveOptions): Promise<InstanceIdentity>;
  /** Release timers and connections. */
  close(): Promise<void>;
}

/**
 * The fields of a Neutron port that the lookup uses, as Neutron's API (and neutron-server's get_ports RPC)
 * returns them; the inventory file and the OpenStack fakes hold the same objects.
 */
export interface NeutronPort {
  readonly id?: string;
  readonly network_id: string;
  readonly mac_address?: string;
  readonly fixed_ips?: ReadonlyArray<{ readonly ip_address: string; readonly subnet_id?: string }>;
  readonly device_id?: string;
  readonly device_owner?: string;
  readonly project_id?: string;
  readonly tenant_id?: string;
}

/** Router-interface device owners (reference.md §1): ports that connect a router to a network. */
export const ROUTER_INTERFACE_OWNERS: readonly string[] = [
  'network:router_interface',
  'network:ha_router_replicated_interface',
  'network:router_interface_distributed',
];
