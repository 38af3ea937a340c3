/*
 * Builds the resolver the configuration asks for: the static inventory (in memory, no cache needed), or
 * Neutron's API behind the port cache. buildResolver() also hands back the parts the agent's wiring needs:
 * the uncached resolver (readiness probes), the cache and the Neutron resolver (their figures feed the
 * metrics), and the inventory (SIGHUP re-reads it).
 */
import { ConfigError, type InstanceResolver, type Logger } from '@nmp/common';
import { createNeutronResolver } from './neutron/create.js';
import type { NeutronResolver } from './neutron/neutron-resolver.js';
import { neutronResolverOptions, portCacheOptions, type ResolverConfig } from './neutron/options.js';
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
}

export async function buildResolver(
  config: ResolverConfig,
  logger: Logger,
  observer?: UpstreamObserver,
): Promise<ResolverParts> {
  if (config.resolver === 'inventory') {
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
