/*
 * The Neutron resolver's public surface, for the agent's wiring (src/index.ts re-exports what it needs).
 */
export { checkCredentials, createNeutronResolver, type NeutronResolverOptions } from './create.js';
export {
  apiBase,
  catalogUrl,
  type EndpointInterface,
  type EndpointSelection,
  type KeystoneAuthOptions,
  type KeystoneRetry,
  type ReloadAction,
  retryDelay,
  selectEndpoint,
  tokensUrl,
} from './keystone-session.js';
export { NeutronResolver, type NeutronResolverStats } from './neutron-resolver.js';
export { normaliseInterface, type ResolverConfig, resolverSchema } from './options.js';
export { PORT_FIELDS } from './port-client.js';
export { neutronResolverOptions, neutronSettings } from './settings.js';
