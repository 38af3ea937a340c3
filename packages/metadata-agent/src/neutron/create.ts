/*
 * Builds a NeutronResolver from plain typed options: checks that the credentials are complete for the
 * chosen auth type (a ConfigError naming the [neutron] option, at start, rather than a 503 per request),
 * reads the CA bundle once unless neutron/settings.ts did, and wires the HTTP client, the Keystone client
 * and the port client together.
 */
import { ConfigError, type Logger } from '@nmp/common';
import { readConfigFile } from '../config-file.js';
import { ROUTER_CACHE_SIZE, ROUTER_RECHECK_AFTER_MS } from '../resolver/settings.js';
import type { UpstreamObserver } from '../upstream-observer.js';
import {
  AUTH_RETRY_INITIAL_MS,
  type EndpointInterface,
  type KeystoneAuthOptions,
  KeystoneClient,
} from './keystone-session.js';
import { NeutronResolver } from './neutron-resolver.js';
import { NeutronPortClient } from './port-client.js';
import { UpstreamHttp } from './upstream-http.js';

export interface NeutronResolverOptions extends KeystoneAuthOptions {
  readonly regionName?: string;
  /** Catalog interface of the Neutron endpoint (default public, as keystoneauth). */
  readonly interface?: EndpointInterface;
  /** Neutron URL to use instead of the catalog's (with or without /v2.0). */
  readonly endpointOverride?: string;
  /** PEM CA bundle contents (wins over caFile). */
  readonly ca?: string | Buffer;
  /** PEM CA bundle file, read once here. */
  readonly caFile?: string;
  readonly insecure?: boolean;
  /** One lookup's deadline, every upstream call included (default 5000 ms). */
  readonly timeoutMs?: number;
  /** TCP + TLS connect timeout (default 3000 ms). */
  readonly connectTimeoutMs?: number;
  /** Router -> networks cache lifetime (default 30000 ms). */
  readonly routerCacheTtlMs?: number;
  /** While Keystone or Neutron cannot be reached, how long a lookup waits before 503 (default 250 ms). */
  readonly outageGraceMs?: number;
  /** Routers remembered at most (default 4096). */
  readonly routerCacheSize?: number;
  /** Keep-alive connections per origin (default 32). */
  readonly maxConnections?: number;
  /**
   * Longest wait before asking Keystone again after a refused login or a catalog without a usable network
   * endpoint (default 300000 ms; [neutron] auth_retry_max_interval).
   */
  readonly authRetryMaxMs?: number;
  /** The first such wait, doubled after each failed try (default 5000 ms; for tests). */
  readonly authRetryInitialMs?: number;
  /** Told about every Keystone and Neutron call (latency, answered or failed). */
  readonly observer?: UpstreamObserver;
}

/** How errors name the CA bundle option. */
export const CAFILE_OPTION = '[neutron] cafile';

export function createNeutronResolver(options: NeutronResolverOptions, logger: Logger): NeutronResolver {
  checkCredentials(options);
  const ca = options.ca ?? (options.caFile ? readConfigFile(CAFILE_OPTION, options.caFile) : undefined);
  const timeoutMs = options.timeoutMs ?? 5000;
  const http = new UpstreamHttp({
    ...(ca !== undefined ? { ca } : {}),
    insecure: options.insecure ?? false,
    connectTimeoutMs: options.connectTimeoutMs ?? 3000,
    requestTimeoutMs: timeoutMs,
    maxConnections: options.maxConnections ?? 32,
    ...(options.observer ? { observer: options.observer } : {}),
  });
  const log = logger.child({ component: 'neutron-resolver' });
  const keystone = new KeystoneClient(
    http,
    options,
    {
      interface: options.interface ?? 'public',
      ...(options.regionName ? { regionName: options.regionName } : {}),
      ...(options.endpointOverride ? { endpointOverride: options.endpointOverride } : {}),
    },
    log,
    timeoutMs,
    {
      initialMs: options.authRetryInitialMs ?? AUTH_RETRY_INITIAL_MS,
      maxMs: options.authRetryMaxMs ?? 300_000,
    },
  );
  if (options.insecure)
    log.warn('[neutron] insecure = true: Keystone and Neutron certificates are not verified');
  return new NeutronResolver(
    http,
    keystone,
    new NeutronPortClient(http, keystone),
    {
      timeoutMs,
      routerCacheTtlMs: options.routerCacheTtlMs ?? 30_000,
      routerCacheSize: options.routerCacheSize ?? ROUTER_CACHE_SIZE,
      routerRecheckAfterMs: ROUTER_RECHECK_AFTER_MS,
      ...(options.outageGraceMs !== undefined ? { outageGraceMs: options.outageGraceMs } : {}),
    },
    log,
  );
}

/**
 * A ConfigError naming the [neutron] option when the credentials are incomplete for the auth type (or a URL
 * is not http(s)); at start, and before a reload applies new credentials.
 */
export function checkCredentials(o: KeystoneAuthOptions & { readonly endpointOverride?: string }): void {
  const need = (ok: unknown, what: string) => {
    if (!ok) throw new ConfigError(`[neutron] ${what} (resolver = neutron, auth_type = ${o.authType})`);
  };
  need(o.authUrl, 'auth_url is required');
  for (const [name, value] of [
    ['auth_url', o.authUrl],
    ['endpoint_override', o.endpointOverride],
  ] as const) {
    if (!value) continue;
    let u: URL;
    try {
      u = new URL(value);
    } catch {
      throw new ConfigError(`[neutron] ${name} = '${value}': expected a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new ConfigError(`[neutron] ${name} = '${value}': expected an http:// or https:// URL`);
  }
  if (o.authType === 'v3applicationcredential') {
    need(o.applicationCredentialSecret, 'application_credential_secret is required');
    need(
      o.applicationCredentialId || o.applicationCredentialName,
      'application_credential_id (or application_credential_name) is required',
    );
    if (!o.applicationCredentialId) {
      need(o.userId || o.username, 'application_credential_name needs user_id or username');
      if (!o.userId)
        need(o.userDomainName || o.userDomainId, 'username needs user_domain_name or user_domain_id');
    }
    return;
  }
  need(o.username || o.userId, 'username (or user_id) is required');
  need(o.password, 'password is required');
  if (!o.userId)
    need(o.userDomainName || o.userDomainId, 'username needs user_domain_name or user_domain_id');
  need(o.projectName || o.projectId, 'project_name (or project_id) is required');
  if (!o.projectId)
    need(
      o.projectDomainName || o.projectDomainId,
      'project_name needs project_domain_name or project_domain_id',
    );
}
