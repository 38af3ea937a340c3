/*
 * @nmp/ns-metadata-proxy: the per-namespace proxy in front of the metadata agent.
 */
export {
  AgentClient,
  type AgentClientOptions,
  type AgentExchange,
  AgentTimeoutError,
  agentError,
} from './agent-client.js';
export { type BindAddress, BindSpecError, listenHost, parseBind } from './bind-address.js';
export { ProxyHandler, type ProxyHandlerOptions, ProxyResponse } from './handler.js';
export {
  agentRequestHeaders,
  IDENTITY_HEADER_NAME,
  instanceResponseHeaders,
  type ProxyIdentity,
  type ProxyMode,
} from './header-policy.js';
export {
  PROXY_LATENCY_BUCKETS,
  ProxyAdminServer,
  type ProxyAdminServerOptions,
  ProxyMetrics,
  type ProxyMetricsOptions,
  REFUSAL_REASONS,
  type RefusalReason,
  refusalReason,
} from './metrics.js';
export { ID_OPTIONS, proxyIdentity, proxyOptions } from './options.js';
export { dropPrivileges } from './privileges.js';
export { DEFAULT_LIMITS, MetadataProxy, type MetadataProxyOptions, type ProxyLimits } from './proxy.js';
export { RateLimiter, type RateLimiterOptions } from './rate-limiter.js';
export { bodyLength, checkRequest, MAX_HEADER_LINES, parserRefusal } from './request-policy.js';
export {
  generateNodeKey,
  loadNodeKey,
  NodeKeyError,
  SessionTokens,
  type TokenBinding,
  type TokenCheck,
} from './session-token.js';
export {
  parseRequiredHeader,
  type SsrfConfig,
  type SsrfSettings,
  ssrfEnabled,
  ssrfOptions,
  ssrfSettings,
  TOKEN_MODES,
  type TokenMode,
} from './ssrf-options.js';
export { canonicalPath, PathRuleError, PathRules } from './ssrf-paths.js';
export {
  createSsrfPolicy,
  SSRF_ERRORS,
  SSRF_REFUSAL_REASONS,
  type SsrfAnswer,
  type SsrfDecision,
  SsrfPolicy,
  type SsrfRefusalReason,
  ssrfReasonForCode,
  TOKEN_HEADER,
  TOKEN_HEADERS,
  TOKEN_PATH,
  TOKEN_TTL_HEADER,
} from './ssrf-policy.js';
export { VERSION } from './version.js';
