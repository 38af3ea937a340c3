/*
 * Builds the resolver the configuration asks for: the static inventory (in memory, no cache needed), or
 * Neutron's API behind the port cache.
 */
import { ConfigError, type InstanceResolver, type Logger } from '@nmp/common';
import { createNeutronResolver } from './neutron/create.js';
import { neutronResolverOptions, portCacheOptions, type ResolverConfig } from './neutron/options.js';
import { CachingResolver } from './resolver/caching-resolver.js';
import { InventoryResolver } from './resolver/inventory-resolver.js';

export async function createResolver(config: ResolverConfig, logger: Logger): Promise<InstanceResolver> {
  if (config.resolver === 'inventory') {
    if (config.inventoryFile === '') throw new ConfigError('resolver = inventory needs inventory_file');
    return InventoryResolver.fromFile(config.inventoryFile);
  }
  const neutron = createNeutronResolver(neutronResolverOptions(config), logger);
  return new CachingResolver(neutron, portCacheOptions(config));
}
