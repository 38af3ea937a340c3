/*
 * The settings every port-looking-up resolver shares (rpc and neutron alike), from the DEFAULT and [cache]
 * options of resolverSchema (neutron/options.ts): the port cache in front of it, the router cache, and how
 * long a lookup waits for a lookup service known to be unreachable. Converted to milliseconds here, once;
 * rpc/settings.ts and neutron/settings.ts take them from here.
 */
import type { ResolverConfig } from '../neutron/options.js';
import type { CachingResolverOptions } from './caching-resolver.js';
import type { PortResolverSettings } from './port-resolver.js';

/** Routers whose network list is kept at most. */
export const ROUTER_CACHE_SIZE = 4096;

/** A not-found through a cached router network list at least this old re-reads the list (ms). */
export const ROUTER_RECHECK_AFTER_MS = 1000;

/** What a PortResolver needs besides its own deadline (which each resolver's section sets). */
export type LookupSettings = Omit<PortResolverSettings, 'timeoutMs'>;

export interface ResolverWideSettings {
  /** The port cache (CachingResolver) in front of an rpc or neutron resolver. */
  readonly cache: CachingResolverOptions;
  readonly lookup: LookupSettings;
}

/** The options portCacheOptions reads. */
export type PortCacheConfig = Pick<
  ResolverConfig,
  | 'portCacheTtl'
  | 'portCacheMaxAge'
  | 'portCacheSize'
  | 'negativeCacheTtl'
  | 'serveStaleOnOutage'
  | 'staleMaxAge'
>;

/** The options lookupSettings reads. */
export type LookupConfig = Pick<ResolverConfig, 'routerCacheTtl' | 'lookupOutageGrace'>;

/** The options resolverWideSettings reads. */
export type ResolverWideConfig = PortCacheConfig & LookupConfig;

export function resolverWideSettings(c: ResolverWideConfig): ResolverWideSettings {
  return { cache: portCacheOptions(c), lookup: lookupSettings(c) };
}

/** The router cache and the outage grace of a PortResolver. */
export function lookupSettings(c: LookupConfig): LookupSettings {
  return {
    routerCacheTtlMs: Math.round(c.routerCacheTtl * 1000),
    routerCacheSize: ROUTER_CACHE_SIZE,
    routerRecheckAfterMs: ROUTER_RECHECK_AFTER_MS,
    outageGraceMs: Math.round(c.lookupOutageGrace * 1000),
  };
}

/** Typed options for CachingResolver from the loaded configuration. */
export function portCacheOptions(c: PortCacheConfig): CachingResolverOptions {
  return {
    ttlMs: Math.round(c.portCacheTtl * 1000),
    maxAgeMs: Math.round(c.portCacheMaxAge * 1000),
    negativeTtlMs: Math.round(c.negativeCacheTtl * 1000),
    maxEntries: c.portCacheSize,
    ...(c.serveStaleOnOutage
      ? { stale: { maxAgeMs: Math.round(c.staleMaxAge * 1000), maxEntries: Math.max(1, c.portCacheSize) } }
      : {}),
  };
}
