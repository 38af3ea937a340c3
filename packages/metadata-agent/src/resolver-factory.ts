/*
 * Builds the resolver the configuration asks for.
 */
import { ConfigError, type InstanceResolver, type Logger } from '@nmp/common';
import { InventoryResolver } from './resolver/inventory-resolver.js';

export interface ResolverSettings {
  readonly resolver: 'neutron' | 'inventory';
  readonly inventoryFile: string;
}

export async function createResolver(settings: ResolverSettings, _logger: Logger): Promise<InstanceResolver> {
  if (settings.resolver === 'inventory') {
    if (settings.inventoryFile === '') throw new ConfigError('resolver = inventory needs inventory_file');
    return InventoryResolver.fromFile(settings.inventoryFile);
  }
  throw new ConfigError('resolver = neutron is not available in this build; use resolver = inventory');
}
