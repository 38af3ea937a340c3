/*
 * Builds the resolver the configuration asks for: the static inventory (in memory, no cache needed),
 * neutron-server over RPC, or Neutron's REST API, the last two behind the port cache. `resolver = auto`
 * (the default) picks by what the files set, so that a stock neutron.conf selects RPC: rpc when
 * transport_url is set, else neutron when [neutron] auth_url is set, else a ConfigError saying what to set;
 * an explicit `resolver =` always wins. buildResolver() also hands back the parts the agent's wiring needs:
 * the uncached resolver (readiness probes), the cache and the Neutron resolver (their figures feed the
 * metrics), the inventory (SIGHUP re-reads it), and the RPC parts (state reports, connection state).
 */
import { ConfigError, type InstanceResolver, type Logger } from '@nmp/common';
import { createNeutronResolver } from './neutron/create.js';
import type { NeutronResolver } from './neutron/neutron-resolver.js';
import { neutronResolverOptions, portCacheOptions, type ResolverConfig } from './neutron/options.js';
import { CachingResolver } from './resolver/caching-resolver.js';
import { InventoryResolver } from './resolver/inventory-resolver.js';
import { createRpcResolver, type ReportFacts, type RpcParts } from './rpc/create.js';
import type { RpcConfig } from './rpc/options.js';
import type { RpcObserver } from './rpc/rpc-client.js';
import type { UpstreamObserver } from './upstream-observer.js';

export type ResolverKind = 'rpc' | 'neutron' | 'inventory';

export interface ResolverChoice {
  readonly kind: ResolverKind;
  /** Why, for the start-up line and --print-config. */
  readonly reason: string;
}

export interface ResolverParts {
  readonly kind: ResolverKind;
  /** What the handler asks. */
  readonly resolver: InstanceResolver;
  /** The same without the cache (readiness probes must reach Neutron). */
  readonly uncached: InstanceResolver;
  readonly cache?: CachingResolver;
  readonly neutron?: NeutronResolver;
  readonly inventory?: InventoryResolver;
  readonly rpc?: RpcParts;
}

export interface BuildExtras {
  /** What the state reports say about the agent (resolver = rpc). */
  readonly facts?: ReportFacts;
  readonly rpcObserver?: RpcObserver;
}

type FactoryConfig = ResolverConfig & Partial<RpcConfig>;

/** Which resolver the configuration selects (resolver = auto decides by what is set). */
export function chooseResolver(config: FactoryConfig): ResolverChoice {
  if (config.resolver !== 'auto') return { kind: config.resolver, reason: 'resolver is set' };
  if (config.transportUrl) return { kind: 'rpc', reason: 'transport_url is set' };
  if (config.neutronAuthUrl) return { kind: 'neutron', reason: '[neutron] auth_url is set' };
  throw new ConfigError(
    'no port lookup configured: set transport_url (neutron.conf: RPC to neutron-server over RabbitMQ), or [neutron] auth_url and its credentials (REST with Keystone), or resolver = inventory with inventory_file',
  );
}

export async function buildResolver(
  config: FactoryConfig,
  logger: Logger,
  observer?: UpstreamObserver,
  extras: BuildExtras = {},
): Promise<ResolverParts> {
  const { kind } = chooseResolver(config);
  if (kind === 'inventory') {
    if (config.inventoryFile === '') throw new ConfigError('resolver = inventory needs inventory_file');
    const inventory = await InventoryResolver.fromFile(config.inventoryFile);
    return { kind, resolver: inventory, uncached: inventory, inventory };
  }
  if (kind === 'rpc') {
    if (!isRpcConfig(config))
      throw new ConfigError('resolver = rpc needs transport_url (as in neutron.conf)');
    const rpc = createRpcResolver(
      {
        config,
        routerCacheTtlMs: Math.round(config.routerCacheTtl * 1000),
        facts: extras.facts ?? { version: 'unknown', socketPath: '', novaHost: '', novaPort: 0 },
        ...(extras.rpcObserver ? { observer: extras.rpcObserver } : {}),
      },
      logger,
    );
    const cache = new CachingResolver(rpc.resolver, portCacheOptions(config));
    return { kind, resolver: cache, uncached: rpc.resolver, cache, rpc };
  }
  const neutron = createNeutronResolver(
    { ...neutronResolverOptions(config), ...(observer ? { observer } : {}) },
    logger,
  );
  const cache = new CachingResolver(neutron, portCacheOptions(config));
  return { kind, resolver: cache, uncached: neutron, cache, neutron };
}

function isRpcConfig(c: FactoryConfig): c is ResolverConfig & RpcConfig {
  return typeof c.transportUrl === 'string' && c.transportUrl !== '' && typeof c.controlExchange === 'string';
}
