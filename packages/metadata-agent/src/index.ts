/*
 * @nmp/metadata-agent: the node agent between the proxies' UNIX socket and Nova's metadata API.
 */
export { MetadataAgent, type MetadataAgentOptions } from './agent.js';
export { AgentHandler, type AgentHandlerOptions } from './handler.js';
export {
  createNeutronResolver,
  NeutronResolver,
  type NeutronResolverOptions,
  type NeutronResolverStats,
  neutronResolverOptions,
  portCacheOptions,
  type ResolverConfig,
  resolverSchema,
} from './neutron/index.js';
export { NovaClient, type NovaClientOptions, novaError } from './nova-client.js';
export { AGENT_COMPAT, agentOptions, agentSchema, socketModeFor } from './options.js';
export { type RequestIdentity, readRequestIdentity } from './request-identity.js';
export {
  type CacheStats,
  CachingResolver,
  type CachingResolverOptions,
} from './resolver/caching-resolver.js';
export { InventoryResolver } from './resolver/inventory-resolver.js';
export { lookupTarget, type NeutronPort, pickPort } from './resolver/port-match.js';
export { createResolver } from './resolver-factory.js';
export { InstanceSigner } from './signer.js';
export { VERSION } from './version.js';
