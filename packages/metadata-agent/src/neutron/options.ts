/*
 * Configuration of the instance lookup: which resolver, the port cache, and the [neutron] section with
 * keystoneauth's option names (the ones operators already write in neutron.conf / nova.conf sections),
 * so that an existing section can be copied as is. The agent merges `resolverSchema` into its own schema;
 * neutron/settings.ts and resolver/settings.ts turn the loaded values into typed settings.
 */
import { type ConfigOf, opt } from '@nmp/common';
import type { EndpointInterface } from './keystone-session.js';

const G = 'neutron';

const INTERFACES = ['internal', 'public', 'admin'] as const;

/** keystoneauth also accepts the old catalog names (publicURL...), as neutron's endpoint_type did. */
export function normaliseInterface(value: string): EndpointInterface | undefined {
  const v = value.trim().toLowerCase().replace(/url$/, '');
  return (INTERFACES as readonly string[]).includes(v) ? (v as EndpointInterface) : undefined;
}

function checkUrl(value: string): string | undefined {
  if (value === '') return undefined;
  try {
    const u = new URL(value);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'expected an http:// or https:// URL';
  } catch {
    return 'expected a URL';
  }
  return undefined;
}

export const resolverSchema = {
  resolver: opt.enum({
    name: 'resolver',
    default: 'auto',
    choices: ['auto', 'rpc', 'neutron', 'inventory', 'ovn'] as const,
    help: 'Where ports are looked up: rpc (neutron-server over RabbitMQ, transport_url), neutron (the REST API with Keystone, [neutron] section), inventory (a static file) or ovn (the OVN Southbound, [ovn] section); auto = ovn when [ovn] ovn_sb_connection is set, else rpc when transport_url is set, else neutron when [neutron] auth_url is set',
  }),
  inventoryFile: opt.string({
    name: 'inventory_file',
    default: '',
    help: 'Static inventory of ports, {"ports": [...]} (resolver = inventory)',
  }),
  portCacheTtl: opt.float({
    name: 'port_cache_ttl',
    default: 5,
    min: 0,
    help: 'Seconds a port lookup answer is reused: from the lookup, or with port_cache_max_age from its last use (0: no cache; concurrent lookups are still shared)',
  }),
  portCacheMaxAge: opt.float({
    name: 'port_cache_max_age',
    default: 60,
    min: 0,
    help: 'Each use of a cached port answer keeps it port_cache_ttl longer, so one lookup lasts an instance\'s boot sequence, but never past this many seconds after the lookup that verified it; a Nova 404, a "no such port" answer and a lookup that sees the address gone or on another port drop it at once (docs/security.md section 9: the risk and the bound). 0 (or not above port_cache_ttl): answers live port_cache_ttl from their lookup',
  }),
  portCacheSize: opt.int({
    name: 'port_cache_size',
    default: 10000,
    min: 0,
    help: 'Port lookup answers kept at most (least recently used dropped first)',
  }),
  negativeCacheTtl: opt.float({
    name: 'negative_cache_ttl',
    default: 1,
    min: 0,
    help: 'Seconds a "no such port" answer is reused',
  }),
  serveStaleOnOutage: opt.bool({
    name: 'serve_stale_on_outage',
    group: 'cache',
    default: false,
    help: 'While the lookup service is unreachable, answer an instance from the last verified port lookup for its address (never after a lookup saw the port gone or the address on another port, never past stale_max_age; each such answer is logged as MDA_STALE_ANSWER and counted). Off by default: see docs/security.md for the risk',
  }),
  staleMaxAge: opt.float({
    name: 'stale_max_age',
    group: 'cache',
    default: 600,
    min: 1,
    help: 'With serve_stale_on_outage: the oldest confirmation (seconds since a lookup last returned that answer) that may still be served',
  }),
  lookupOutageGrace: opt.float({
    name: 'lookup_outage_grace',
    default: 0.25,
    min: 0,
    max: 5,
    help: 'While the lookup service is known unreachable (resolver = rpc: no broker connection after a failure; neutron: Keystone or Neutron refused or could not be connected to), a port not in the cache waits at most this many seconds for it to come back, then gets 503 at once; a connected but silent server still gets rpc_lookup_timeout ([neutron] timeout)',
  }),
  routerCacheTtl: opt.float({
    name: 'router_cache_ttl',
    default: 30,
    min: 0,
    help: "Seconds a router's list of networks is reused (router-mode lookups)",
  }),

  neutronAuthUrl: opt.string({
    name: 'auth_url',
    group: G,
    default: '',
    flag: 'neutron-auth-url',
    help: 'Keystone URL, e.g. https://keystone.example:5000/v3',
    check: checkUrl,
  }),
  neutronAuthType: opt.enum({
    name: 'auth_type',
    group: G,
    default: 'password',
    choices: ['password', 'v3password', 'v3applicationcredential'] as const,
    flag: 'neutron-auth-type',
    help: 'password (user + project) or v3applicationcredential',
  }),
  neutronUsername: opt.string({
    name: 'username',
    group: G,
    default: '',
    flag: 'neutron-username',
    help: 'Keystone user name (auth_type = password)',
  }),
  neutronUserId: opt.string({
    name: 'user_id',
    group: G,
    default: '',
    flag: 'neutron-user-id',
    help: 'Keystone user id, instead of username + user domain',
  }),
  neutronPassword: opt.string({
    name: 'password',
    group: G,
    default: '',
    secret: true,
    help: "The Keystone user's password",
  }),
  neutronProjectName: opt.string({
    name: 'project_name',
    group: G,
    default: '',
    flag: 'neutron-project-name',
    help: 'Project to scope the token to (by name, with a project domain)',
  }),
  neutronProjectId: opt.string({
    name: 'project_id',
    group: G,
    default: '',
    flag: 'neutron-project-id',
    help: 'Project to scope the token to (by id)',
  }),
  neutronUserDomainName: opt.string({
    name: 'user_domain_name',
    group: G,
    default: '',
    flag: 'neutron-user-domain-name',
    help: 'Domain of the user (by name), e.g. Default',
  }),
  neutronUserDomainId: opt.string({
    name: 'user_domain_id',
    group: G,
    default: '',
    flag: 'neutron-user-domain-id',
    help: 'Domain of the user (by id), e.g. default',
  }),
  neutronProjectDomainName: opt.string({
    name: 'project_domain_name',
    group: G,
    default: '',
    flag: 'neutron-project-domain-name',
    help: 'Domain of the project (by name)',
  }),
  neutronProjectDomainId: opt.string({
    name: 'project_domain_id',
    group: G,
    default: '',
    flag: 'neutron-project-domain-id',
    help: 'Domain of the project (by id)',
  }),
  neutronApplicationCredentialId: opt.string({
    name: 'application_credential_id',
    group: G,
    default: '',
    flag: 'neutron-application-credential-id',
    help: 'Application credential id (auth_type = v3applicationcredential)',
  }),
  neutronApplicationCredentialName: opt.string({
    name: 'application_credential_name',
    group: G,
    default: '',
    flag: 'neutron-application-credential-name',
    help: 'Application credential name, with username + user domain or user_id, instead of its id',
  }),
  neutronApplicationCredentialSecret: opt.string({
    name: 'application_credential_secret',
    group: G,
    default: '',
    secret: true,
    help: 'Application credential secret',
  }),
  neutronRegionName: opt.string({
    name: 'region_name',
    group: G,
    default: '',
    flag: 'neutron-region-name',
    help: 'Region of the Neutron endpoint in the catalog (first one found when empty)',
  }),
  neutronInterface: opt.string({
    name: 'interface',
    group: G,
    default: 'public',
    deprecatedNames: ['endpoint_type'],
    flag: 'neutron-interface',
    help: 'Catalog interface of the Neutron endpoint: internal, public or admin (publicURL... accepted)',
    check: (v) => (normaliseInterface(v) ? undefined : 'expected internal, public or admin'),
  }),
  neutronEndpointOverride: opt.string({
    name: 'endpoint_override',
    group: G,
    default: '',
    flag: 'neutron-endpoint-override',
    help: 'Neutron URL to use instead of the catalog, e.g. https://neutron.example:9696',
    check: checkUrl,
  }),
  neutronCafile: opt.string({
    name: 'cafile',
    group: G,
    default: '',
    flag: 'neutron-cafile',
    help: 'PEM CA bundle to verify Keystone and Neutron (system CAs when empty)',
  }),
  neutronInsecure: opt.bool({
    name: 'insecure',
    group: G,
    default: false,
    flag: 'neutron-insecure',
    help: 'Do not verify Keystone and Neutron certificates',
  }),
  neutronTimeout: opt.float({
    name: 'timeout',
    group: G,
    default: 5,
    min: 0.1,
    flag: 'neutron-timeout',
    help: 'Seconds one lookup may take (token, router and port calls together) before the instance gets 503',
  }),
  neutronConnectTimeout: opt.float({
    name: 'connect_timeout',
    group: G,
    default: 3,
    min: 0.1,
    flag: 'neutron-connect-timeout',
    help: 'Seconds to open a connection (TCP and TLS) to Keystone or Neutron',
  }),
  neutronAuthRetryMaxInterval: opt.float({
    name: 'auth_retry_max_interval',
    group: G,
    default: 300,
    min: 1,
    flag: 'neutron-auth-retry-max-interval',
    help: "Longest wait, in seconds, before asking Keystone again after it refused the credentials (any 4xx: each refused login counts towards Keystone's account lockout) or the token's catalog had no usable network endpoint; the wait starts at 5 s and doubles after each failed try, one try at a time, and lookups get 503 meanwhile. A SIGHUP that changes the credentials logs in at once",
  }),
};

export type ResolverConfig = ConfigOf<typeof resolverSchema>;
