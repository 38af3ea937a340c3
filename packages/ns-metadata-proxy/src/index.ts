/*
 * @nmp/ns-metadata-proxy: the per-namespace proxy in front of the metadata agent.
 */

// Bind parsing lives in @nmp/common now (the daemon and the hooks read binds too); still exported here.
export { type BindAddress, BindSpecError, listenHost, parseBind } from '@nmp/common';
export {
  AgentClient,
  type AgentClientOptions,
  type AgentExchange,
  AgentTimeoutError,
  agentError,
} from './agent-client.js';
export { ProxyHandler, type ProxyHandlerOptions, ProxyResponse } from './handler.js';
export {
  TOKEN_HEADER,
  TOKEN_HEADERS,
  TOKEN_TTL_HEADER,
} from './header-names.js';
export { agentRequestHeaders, instanceResponseHeaders } from './header-policy.js';
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
  describeServing,
  type ServingConfig,
  type ServingSettings,
  servingSettings,
} from './serving-settings.js';
export {
  parseRequiredHeader,
  type SsrfConfig,
  type SsrfSettings,
  ssrfEnabled,
  ssrfOptions,
  ssrfSettings,
  TOKEN_MODES,
  type TokenMode,
} from './ssrf/options.js';
export { canonicalPath, PathRuleError, PathRules } from './ssrf/paths.js';
export {
  createSsrfPolicy,
  loadTokenKey,
  SSRF_ERRORS,
  SSRF_REFUSAL_REASONS,
  type SsrfAnswer,
  type SsrfDecision,
  SsrfPolicy,
  type SsrfRefusalReason,
  ssrfReasonForCode,
  TOKEN_PATH,
  type TokenKey,
} from './ssrf/policy.js';
export {
  generateNodeKey,
  loadNodeKey,
  NodeKeyError,
  SessionTokens,
  type TokenBinding,
  type TokenCheck,
} from './ssrf/session-token.js';
export { VERSION } from './version.js';
