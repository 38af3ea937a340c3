/*
 * @nmp/ns-metadata-proxy: the per-namespace proxy in front of the metadata agent.
 */
export { type AgentClientOptions, agentError, createAgentPool } from './agent-client.js';
export { type BindAddress, BindSpecError, listenHost, parseBind } from './bind-address.js';
export { ProxyHandler, type ProxyHandlerOptions, ProxyResponse } from './handler.js';
export {
  agentRequestHeaders,
  IDENTITY_HEADER_NAME,
  instanceResponseHeaders,
  type ProxyIdentity,
  type ProxyMode,
} from './header-policy.js';
export { proxyOptions } from './options.js';
export { dropPrivileges } from './privileges.js';
export { DEFAULT_LIMITS, MetadataProxy, type MetadataProxyOptions, type ProxyLimits } from './proxy.js';
export { RateLimiter, type RateLimiterOptions } from './rate-limiter.js';
export { bodyLength, checkRequest, MAX_HEADER_LINES, parserRefusal } from './request-policy.js';
export { VERSION } from './version.js';
