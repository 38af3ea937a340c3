/*
 * The REST resolver's settings from the loaded configuration: the [neutron] section in keystoneauth's names
 * turned into createNeutronResolver()'s typed options (times in milliseconds, the resolver-wide router cache
 * and outage grace from resolver/settings.ts), the credentials checked for the auth type and the CA bundle
 * read: a ConfigError naming the [neutron] option at start (or on a reload), never a 503 per request.
 */
import { readConfigFile } from '../config-file.js';
import { lookupSettings } from '../resolver/settings.js';
import { CAFILE_OPTION, checkCredentials, type NeutronResolverOptions } from './create.js';
import { normaliseInterface, type ResolverConfig } from './options.js';

/** Typed options for createNeutronResolver() from the loaded configuration (nothing read, nothing checked). */
export function neutronResolverOptions(c: ResolverConfig): NeutronResolverOptions {
  const s = (v: string) => (v === '' ? undefined : v);
  const lookup = lookupSettings(c);
  return {
    authUrl: c.neutronAuthUrl,
    authType: c.neutronAuthType === 'v3applicationcredential' ? 'v3applicationcredential' : 'password',
    username: s(c.neutronUsername),
    userId: s(c.neutronUserId),
    password: s(c.neutronPassword),
    projectName: s(c.neutronProjectName),
    projectId: s(c.neutronProjectId),
    userDomainName: s(c.neutronUserDomainName),
    userDomainId: s(c.neutronUserDomainId),
    projectDomainName: s(c.neutronProjectDomainName),
    projectDomainId: s(c.neutronProjectDomainId),
    applicationCredentialId: s(c.neutronApplicationCredentialId),
    applicationCredentialName: s(c.neutronApplicationCredentialName),
    applicationCredentialSecret: s(c.neutronApplicationCredentialSecret),
    regionName: s(c.neutronRegionName),
    interface: normaliseInterface(c.neutronInterface) ?? 'public',
    endpointOverride: s(c.neutronEndpointOverride),
    caFile: s(c.neutronCafile),
    insecure: c.neutronInsecure,
    timeoutMs: Math.round(c.neutronTimeout * 1000),
    connectTimeoutMs: Math.round(c.neutronConnectTimeout * 1000),
    routerCacheTtlMs: lookup.routerCacheTtlMs,
    routerCacheSize: lookup.routerCacheSize,
    outageGraceMs: lookup.outageGraceMs,
    authRetryMaxMs: Math.round(c.neutronAuthRetryMaxInterval * 1000),
  };
}

/** resolver = neutron: the options checked (credentials, URLs) and the CA bundle read. Throws ConfigError. */
export function neutronSettings(c: ResolverConfig): NeutronResolverOptions {
  const options = neutronResolverOptions(c);
  checkCredentials(options);
  return options.caFile ? { ...options, ca: readConfigFile(CAFILE_OPTION, options.caFile) } : options;
}
