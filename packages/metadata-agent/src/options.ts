/*
 * The agent's configuration schema. Option names are neutron's metadata_agent.ini names (reference.md §11)
 * so an existing file works unchanged; what we add has names in the same style.
 */
import { type CompatibilityList, opt } from '@nmp/common';
import { resolverSchema } from './neutron/options.js';

export const agentOptions = {
  statePath: opt.string({
    name: 'state_path',
    default: '/var/lib/neutron',
    help: 'Where neutron keeps its state',
  }),
  socketPath: opt.string({
    name: 'metadata_proxy_socket',
    default: '$state_path/metadata_proxy',
    help: 'UNIX socket the proxies connect to',
  }),
  socketMode: opt.enum({
    name: 'metadata_proxy_socket_mode',
    default: 'deduce',
    choices: ['deduce', 'user', 'group', 'all'] as const,
    help: 'Socket permissions: user=0644, group=0664, all=0666, deduce from metadata_proxy_user/group',
  }),
  proxyUser: opt.string({
    name: 'metadata_proxy_user',
    default: '',
    help: 'User the proxies run as (used to deduce the socket mode); empty = the agent user',
  }),
  proxyGroup: opt.string({
    name: 'metadata_proxy_group',
    default: '',
    help: 'Group the proxies run as (used to deduce the socket mode); empty = the agent group',
  }),
  backlog: opt.int({ name: 'metadata_backlog', default: 4096, min: 1, help: 'Listen backlog of the socket' }),
  novaHost: opt.string({
    name: 'nova_metadata_host',
    default: '127.0.0.1',
    deprecatedNames: ['nova_metadata_ip'],
    help: 'Nova metadata API host or IP',
  }),
  novaPort: opt.int({
    name: 'nova_metadata_port',
    default: 8775,
    min: 1,
    max: 65535,
    help: 'Nova metadata API port',
  }),
  novaProtocol: opt.enum({
    name: 'nova_metadata_protocol',
    default: 'http',
    choices: ['http', 'https'] as const,
    help: 'Protocol to reach Nova',
  }),
  novaInsecure: opt.bool({
    name: 'nova_metadata_insecure',
    default: false,
    help: 'Do not verify the certificate of Nova (https only)',
  }),
  novaCaFile: opt.string({
    name: 'auth_ca_cert',
    default: '',
    help: "CA bundle that signs Nova's certificate",
  }),
  novaClientCert: opt.string({
    name: 'nova_client_cert',
    default: '',
    help: 'Client certificate for Nova (used only with nova_client_priv_key)',
  }),
  novaClientKey: opt.string({
    name: 'nova_client_priv_key',
    default: '',
    help: 'Private key of the client certificate for Nova',
  }),
  novaTimeout: opt.float({
    name: 'nova_metadata_timeout',
    default: 30,
    min: 0.1,
    help: "Seconds to wait for Nova to connect and answer before 504 (below the proxy's 32 s)",
  }),
  novaConnections: opt.int({
    name: 'nova_metadata_connections',
    default: 64,
    min: 1,
    help: 'Keep-alive connections to Nova at most',
  }),
  sharedSecret: opt.string({
    name: 'metadata_proxy_shared_secret',
    default: '',
    secret: true,
    help: "Shared secret to sign instance ids; must equal Nova's [neutron] metadata_proxy_shared_secret",
  }),
  maxBodySize: opt.int({
    name: 'metadata_max_body_size',
    default: 65536,
    min: 0,
    help: 'Largest request body accepted, in bytes (413 above)',
  }),
  debug: opt.bool({ name: 'debug', default: false, help: 'Log at debug level' }),
  logLevel: opt.enum({
    name: 'log_level',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const,
    help: 'Log level (debug=True wins)',
  }),
  logFile: opt.string({ name: 'log_file', default: '', help: 'Log to this file instead of stdout' }),
};

/** Everything the agent reads: its own options plus the resolver's (DEFAULT resolver/cache, [neutron] Keystone). */
export const agentSchema = { ...agentOptions, ...resolverSchema };

/** Options neutron's metadata_agent.ini commonly holds that have no effect here (no unknown-option warning). */
export const AGENT_COMPAT: CompatibilityList = {
  ignored: [
    'DEFAULT.metadata_workers',
    'DEFAULT.verbose',
    'DEFAULT.log_dir',
    'DEFAULT.use_syslog',
    'DEFAULT.syslog_log_facility',
    'DEFAULT.use_stderr',
    'DEFAULT.use_journal',
    'DEFAULT.log_config_append',
    'DEFAULT.transport_url',
    'DEFAULT.external_pids',
    'DEFAULT.rpc_response_timeout',
    'AGENT.*',
    'agent.*',
    'cache.*',
    'ovs.*',
    'oslo_concurrency.*',
    'oslo_messaging_rabbit.*',
  ],
};

/** Socket mode as neutron deduces it (reference.md §3.1). */
export function socketModeFor(
  mode: 'deduce' | 'user' | 'group' | 'all',
  proxyUser: string,
  proxyGroup: string,
  me: { uid: number; gid: number; user: string; group: string },
): number {
  const table = { user: 0o644, group: 0o664, all: 0o666 } as const;
  if (mode !== 'deduce') return table[mode];
  if (
    proxyUser === '' ||
    proxyUser === '0' ||
    proxyUser === 'root' ||
    proxyUser === String(me.uid) ||
    proxyUser === me.user
  ) {
    return table.user;
  }
  if (proxyGroup === '' || proxyGroup === String(me.gid) || proxyGroup === me.group) return table.group;
  return table.all;
}
