/*
 * What a listener does with instance traffic, built once from the loaded configuration: the limits and
 * timeouts (in milliseconds), the per-source rate limit, the SSRF defences and whether metrics are served.
 * The standalone proxy's CLI and the daemon's CLI both call servingSettings(), so one ini file means the
 * same in both modes and neither can forget a setting. The result is plain data (the daemon hands it to
 * its serving worker over IPC); the objects that act on it (RateLimiter, SsrfPolicy, ProxyMetrics) are
 * made where they run. Nothing here reads a file: the SSRF node key is loaded by the caller (as root).
 */
import { ConfigError, type ConfigOf } from '@nmp/common';
import type { proxyOptions } from './options.js';
import type { ProxyLimits } from './proxy.js';
import type { RateLimiterOptions } from './rate-limiter.js';
import { type SsrfSettings, ssrfSettings } from './ssrf/options.js';

type ProxyConfig = ConfigOf<typeof proxyOptions>;

/** The options servingSettings reads: the proxy's, minus where it listens and what it stamps. */
export type ServingConfig = Pick<
  ProxyConfig,
  | 'timeoutHttpRequest'
  | 'timeoutHttpKeepAlive'
  | 'timeoutServer'
  | 'timeoutClient'
  | 'timeoutConnect'
  | 'timeoutFirstByte'
  | 'maxConnections'
  | 'maxConnectionsPerSource'
  | 'maxHeaderSize'
  | 'maxBodySize'
  | 'backlog'
  | 'agentConnections'
  | 'rateLimitEnabled'
  | 'rateLimitIpVersions'
  | 'baseWindow'
  | 'baseLimit'
  | 'burstWindow'
  | 'burstLimit'
  | 'adminSocket'
  | 'tokenMode'
  | 'tokenMaxTtl'
  | 'tokenKeyFile'
  | 'requiredHeader'
  | 'refuseForwardedFor'
  | 'pathAllow'
  | 'pathDeny'
>;

export interface ServingSettings {
  readonly limits: ProxyLimits;
  /** [metadata_rate_limiting] per source address; undefined when off (or when no family is named). */
  readonly rateLimit: RateLimiterOptions | undefined;
  /** [metadata_ssrf], validated; undefined when every defence is off (then they cost nothing). */
  readonly ssrf: SsrfSettings | undefined;
  /** Where /metrics, /healthz and /readyz are served; '' = nowhere, and no metrics are kept. */
  readonly adminSocket: string;
  /** For the log at start (a setting that has no effect as given). */
  readonly warnings: readonly string[];
}

/** The serving settings a configuration asks for. Throws ConfigError for a combination that cannot work. */
export function servingSettings(config: ServingConfig): ServingSettings {
  const warnings: string[] = [];
  const limits: ProxyLimits = Object.freeze({
    requestTimeoutMs: config.timeoutHttpRequest * 1000,
    keepAliveTimeoutMs: config.timeoutHttpKeepAlive * 1000,
    upstreamTimeoutMs: config.timeoutServer * 1000,
    clientTimeoutMs: config.timeoutClient * 1000,
    connectTimeoutMs: config.timeoutConnect * 1000,
    firstByteTimeoutMs: Math.round(config.timeoutFirstByte * 1000),
    maxConnections: config.maxConnections,
    maxConnectionsPerSource: Math.min(config.maxConnectionsPerSource, config.maxConnections),
    maxHeaderSize: config.maxHeaderSize,
    maxBodySize: config.maxBodySize,
    backlog: config.backlog,
    agentConnections: config.agentConnections,
  });
  return Object.freeze({
    limits,
    rateLimit: rateLimitFor(config, warnings),
    ssrf: ssrfSettings(config),
    adminSocket: config.adminSocket,
    warnings: Object.freeze(warnings),
  });
}

/**
 * The [metadata_rate_limiting] limiter's options. Unlike neutron, ip_versions may name both families,
 * and does by default.
 */
function rateLimitFor(config: ServingConfig, warnings: string[]): RateLimiterOptions | undefined {
  if (!config.rateLimitEnabled) return undefined;
  const versions = new Set<string>();
  for (const v of config.rateLimitIpVersions) {
    const t = v.trim();
    if (t !== '4' && t !== '6')
      throw new ConfigError(`[metadata_rate_limiting] ip_versions: '${v}' is not 4 or 6`);
    versions.add(t);
  }
  if (versions.size === 0) {
    warnings.push('rate_limit_enabled is set but ip_versions is empty: no source is rate limited');
    return undefined;
  }
  return Object.freeze({
    baseWindowMs: config.baseWindow * 1000,
    baseLimit: config.baseLimit,
    burstWindowMs: config.burstWindow * 1000,
    burstLimit: config.burstLimit,
    ipv4: versions.has('4'),
    ipv6: versions.has('6'),
  });
}

/** What the start-up log line says about the settings (both CLIs print the same). */
export function describeServing(s: ServingSettings): Record<string, unknown> {
  const r = s.rateLimit;
  return {
    limits: {
      maxConnections: s.limits.maxConnections,
      maxConnectionsPerSource: s.limits.maxConnectionsPerSource,
      firstByteTimeoutMs: s.limits.firstByteTimeoutMs,
      clientTimeoutMs: s.limits.clientTimeoutMs,
    },
    rateLimit: r
      ? {
          ipVersions: [...(r.ipv4 ? ['4'] : []), ...(r.ipv6 ? ['6'] : [])],
          base: `${r.baseLimit}/${r.baseWindowMs / 1000}s`,
          burst: `${r.burstLimit}/${r.burstWindowMs / 1000}s`,
        }
      : false,
    ssrf: s.ssrf
      ? {
          tokenMode: s.ssrf.tokenMode,
          requiredHeader: s.ssrf.requiredHeader?.name ?? false,
          refuseForwardedFor: s.ssrf.refuseForwardedFor,
        }
      : false,
  };
}
