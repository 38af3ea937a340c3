/*
 * Builds the resolver the configuration asks for: the static inventory (in memory, no cache needed),
 * neutron-server over RPC or Neutron's REST API (both behind the port cache), or the OVN Southbound's
 * monitored index (local: no cache either). `resolver = auto` (the default) picks by what the files set, so
 * that stock files select what neutron's own agent would use: ovn when [ovn] ovn_sb_connection is set (an
 * OVN chassis, whose neutron.conf may hold a transport_url too), else rpc when transport_url is set, else
 * neutron when [neutron] auth_url is set, else a ConfigError saying what to set; an explicit `resolver =`
 * always wins. buildResolver() wires what agentSettings() chose and checked (settings.ts), and hands back the parts the agent's wiring needs: the uncached resolver
 * (readiness probes), the cache and the Neutron resolver (their figures feed the metrics), the inventory
 * (SIGHUP re-reads it), the RPC parts (state reports, connection state), and a resolver's own health and
 * metrics when it has them.
 */
import { ConfigError, type InstanceResolver, type Logger, type Registry } from '@nmp/common';
import { createNeutronResolver } from './neutron/create.js';
import type { NeutronResolver } from './neutron/neutron-resolver.js';
import type { ResolverConfig } from './neutron/options.js';
import type { OvnResolverConfig } from './ovn/options.js';
import { OvnMetadataService } from './ovn/ovn-service.js';
import { CachingResolver } from './resolver/caching-resolver.js';
import { InventoryResolver } from './resolver/inventory-resolver.js';
import { type ReportFacts, type RpcParts, startRpcResolver } from './rpc/create.js';
import type { RpcConfig } from './rpc/options.js';
import type { RpcObserver } from './rpc/rpc-client.js';
import type { ResolverSettings } from './settings.js';
import type { UpstreamObserver } from './upstream-observer.js';

export type ResolverKind = 'rpc' | 'neutron' | 'inventory' | 'ovn';

export interface ResolverChoice {
  readonly kind: ResolverKind;
  /** Why, for the start-up line and --print-config. */
  readonly reason: string;
}

export interface ResolverParts {
  readonly kind: ResolverKind;
  /** What the handler asks. */
  readonly resolver: InstanceResolver;
  /** The same without the cache (readiness probes must reach the upstream). */
  readonly uncached: InstanceResolver;
  readonly cache?: CachingResolver;
  readonly neutron?: NeutronResolver;
  readonly inventory?: InventoryResolver;
  readonly rpc?: RpcParts;
  readonly ovn?: OvnMetadataService;
  /** Why the resolver cannot answer currently (for /readyz), undefined when it can. */
  readonly health?: () => string | undefined;
  /** Add the resolver's own metric families. */
  readonly registerMetrics?: (registry: Registry) => void;
}

export interface BuildExtras {
  /** What the state reports say about the agent (resolver = rpc). */
  readonly facts?: ReportFacts;
  readonly rpcObserver?: RpcObserver;
}

type FactoryConfig = ResolverConfig & Partial<RpcConfig> & Partial<OvnResolverConfig>;

/** Which resolver the configuration selects (resolver = auto decides by what is set). */
export function chooseResolver(config: FactoryConfig): ResolverChoice {
  if (config.resolver !== 'auto') return { kind: config.resolver, reason: 'resolver is set' };
  if (config.ovnSbConnection) return { kind: 'ovn', reason: '[ovn] ovn_sb_connection is set' };
  if (config.transportUrl) return { kind: 'rpc', reason: 'transport_url is set' };
  if (config.neutronAuthUrl) return { kind: 'neutron', reason: '[neutron] auth_url is set' };
  throw new ConfigError(
    'no port lookup configured: set transport_url (neutron.conf: RPC to neutron-server over RabbitMQ), [ovn] ovn_sb_connection (ML2/OVN), or [neutron] auth_url and its credentials (REST with Keystone), or resolver = inventory with inventory_file',
  );
}

/** The resolver the settings describe (agentSettings().resolver), with the parts the wiring needs. */
export async function buildResolver(
  settings: ResolverSettings,
  logger: Logger,
  observer?: UpstreamObserver,
  extras: BuildExtras = {},
): Promise<ResolverParts> {
  const { kind } = settings;
  switch (settings.kind) {
    case 'ovn': {
      const ovn = new OvnMetadataService({ config: settings.ovn, logger });
      void ovn.start();
      return {
        kind,
        resolver: ovn.resolver,
        uncached: ovn.resolver,
        ovn,
        health: () => ovn.health(),
        registerMetrics: (registry) => ovn.registerMetrics(registry),
      };
    }
    case 'inventory': {
      const inventory = await InventoryResolver.fromFile(settings.inventoryFile);
      return { kind, resolver: inventory, uncached: inventory, inventory };
    }
    case 'rpc': {
      const rpc = startRpcResolver(
        settings.rpc,
        {
          facts: extras.facts ?? { version: 'unknown', socketPath: '', novaHost: '', novaPort: 0 },
          ...(extras.rpcObserver ? { observer: extras.rpcObserver } : {}),
        },
        logger,
      );
      const cache = new CachingResolver(rpc.resolver, settings.cache);
      return {
        kind,
        resolver: cache,
        uncached: rpc.resolver,
        cache,
        rpc,
        health: () => (rpc.broker.connected ? undefined : `no connection to RabbitMQ (${rpc.transport})`),
      };
    }
    case 'neutron': {
      const neutron = createNeutronResolver(
        { ...settings.neutron, ...(observer ? { observer } : {}) },
        logger,
      );
      const cache = new CachingResolver(neutron, settings.cache);
      return { kind, resolver: cache, uncached: neutron, cache, neutron };
    }
  }
}
