/*
 * Builds the resolver the configuration asks for: the static inventory (in memory, no cache needed),
 * Neutron's API behind the port cache, or the OVN Southbound's monitored index (local: no cache either).
 * `resolver = auto` picks ovn when [ovn] ovn_sb_connection is set, else neutron when [neutron] auth_url is.
 * buildResolver() also hands back the parts the agent's wiring needs: the uncached resolver (readiness
 * probes), the cache and the Neutron resolver (their figures feed the metrics), the inventory (SIGHUP
 * re-reads it), and a resolver's own health and metrics when it has them.
 */
import { ConfigError, type InstanceResolver, type Logger, type Registry } from '@nmp/common';
import { createNeutronResolver } from './neutron/create.js';
import type { NeutronResolver } from './neutron/neutron-resolver.js';
import { neutronResolverOptions, portCacheOptions, type ResolverConfig } from './neutron/options.js';
import type { OvnResolverConfig } from './ovn/options.js';
import { OvnMetadataService } from './ovn/ovn-service.js';
import { CachingResolver } from './resolver/caching-resolver.js';
import { InventoryResolver } from './resolver/inventory-resolver.js';
import type { UpstreamObserver } from './upstream-observer.js';

export interface ResolverParts {
  /** What the handler asks. */
  readonly resolver: InstanceResolver;
  /** The same without the cache (readiness probes must reach Neutron). */
  readonly uncached: InstanceResolver;
  readonly cache?: CachingResolver;
  readonly neutron?: NeutronResolver;
  readonly inventory?: InventoryResolver;
  readonly ovn?: OvnMetadataService;
  /** Why the resolver cannot answer currently (for /readyz), undefined when it can. */
  readonly health?: () => string | undefined;
  /** Add the resolver's own metric families. */
  readonly registerMetrics?: (registry: Registry) => void;
}

export type ResolverKind = 'neutron' | 'inventory' | 'ovn';

/** What `resolver` (auto included) means for this configuration. */
export function selectResolver(config: ResolverConfig & Partial<OvnResolverConfig>): ResolverKind {
  if (config.resolver !== 'auto') return config.resolver;
  if (config.ovnSbConnection) return 'ovn';
  if (config.neutronAuthUrl) return 'neutron';
  throw new ConfigError(
    'no resolver configured: set [ovn] ovn_sb_connection (OVN), [neutron] auth_url (Neutron API), or resolver = inventory with inventory_file',
  );
}

export async function buildResolver(
  config: ResolverConfig & OvnResolverConfig,
  logger: Logger,
  observer?: UpstreamObserver,
): Promise<ResolverParts> {
  const kind = selectResolver(config);
  if (kind === 'ovn') {
    if (config.ovnSbConnection === '') throw new ConfigError('resolver = ovn needs [ovn] ovn_sb_connection');
    const ovn = new OvnMetadataService({ config, logger });
    void ovn.start();
    return {
      resolver: ovn.resolver,
      uncached: ovn.resolver,
      ovn,
      health: () => ovn.health(),
      registerMetrics: (registry) => ovn.registerMetrics(registry),
    };
  }
  if (kind === 'inventory') {
    if (config.inventoryFile === '') throw new ConfigError('resolver = inventory needs inventory_file');
    const inventory = await InventoryResolver.fromFile(config.inventoryFile);
    return { resolver: inventory, uncached: inventory, inventory };
  }
  const neutron = createNeutronResolver(
    { ...neutronResolverOptions(config), ...(observer ? { observer } : {}) },
    logger,
  );
  const cache = new CachingResolver(neutron, portCacheOptions(config));
  return { resolver: cache, uncached: neutron, cache, neutron };
}
