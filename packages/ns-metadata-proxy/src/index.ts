/*
 * @nmp/ns-metadata-proxy: the per-namespace proxy in front of the metadata agent.
 */

export { AgentClient } from './agent-client.js';
export { ProxyHandler } from './handler.js';
export { TOKEN_TTL_HEADER } from './header-names.js';
export { ProxyMetrics } from './metrics.js';
export { proxyIdentity, proxyOptions } from './options.js';
export { DEFAULT_LIMITS, MetadataProxy, type ProxyLimits } from './proxy.js';
export { RateLimiter, type RateLimiterOptions } from './rate-limiter.js';
export { describeServing, type ServingSettings, servingSettings } from './serving-settings.js';
export { type SsrfSettings, ssrfOptions, ssrfSettings } from './ssrf/options.js';
export { createSsrfPolicy, loadTokenKey, SSRF_REFUSAL_REASONS, SsrfPolicy } from './ssrf/policy.js';
export { generateNodeKey, SessionTokens } from './ssrf/session-token.js';
