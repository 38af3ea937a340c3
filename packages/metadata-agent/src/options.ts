/*
 * The agent's configuration schema. Option names are neutron's metadata_agent.ini names (reference.md §11)
 * so an existing file works unchanged; what we add has names in the same style.
 */
import { type CompatibilityList, opt } from '@nmp/common';
import { parseAdminBind } from './admin-server.js';
import { resolverSchema } from './neutron/options.js';
import { ovnResolverSchema } from './ovn/options.js';
import { rpcSchema } from './rpc/options.js';

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
    secretFile: true,
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
  adminSocket: opt.string({
    name: 'admin_socket',
    default: '$metadata_proxy_socket.admin',
    help: "UNIX socket (mode 0600) serving /metrics, /healthz and /readyz, next to the proxies' socket by default; '' for none",
  }),
  adminBind: opt.string({
    name: 'admin_bind',
    default: '',
    help: "Also serve them on this loopback ADDRESS:PORT (127.0.0.1:9180, [::1]:9180); other addresses are refused; '' for none",
    check: (v) => {
      if (v === '') return undefined;
      const bind = parseAdminBind(v);
      return typeof bind === 'string' ? bind : undefined;
    },
  }),
  readinessWindow: opt.float({
    name: 'readiness_window',
    default: 60,
    min: 1,
    help: '/readyz is 200 while Nova and the resolver answered within this many seconds (an idle agent probes them)',
  }),
};

/**
 * Everything the agent reads: its own options plus the resolvers' (DEFAULT resolver/cache, [neutron]
 * Keystone, neutron.conf's transport_url / [oslo_messaging_rabbit] / [AGENT] for RPC, and [ovn]/[ovs] for the
 * OVN Southbound).
 */
export const agentSchema = { ...agentOptions, ...resolverSchema, ...rpcSchema, ...ovnResolverSchema };

/**
 * Options found in neutron's files (metadata_agent.ini, and neutron.conf when it is passed too, as
 * neutron's own units do) that have no effect here: accepted without an "unknown option" warning and
 * listed in one start-up line. Anything else unknown is warned about.
 */
export const AGENT_COMPAT: CompatibilityList = {
  ignored: [
    // neutron's metadata agent and agents in general
    'DEFAULT.external_pids',
    'DEFAULT.rpc_workers',
    'DEFAULT.rpc_state_report_workers',
    'DEFAULT.interface_driver',
    'AGENT.*',
    'ovs.*',
    'ovn.*',
    'metadata_rate_limiting.*',
    'metadata_haproxy.*',
    'ovn_metadata.*',
    // oslo.log
    'DEFAULT.verbose',
    'DEFAULT.log_dir',
    'DEFAULT.logdir',
    'DEFAULT.log_config_append',
    'DEFAULT.log_date_format',
    'DEFAULT.watch_log_file',
    'DEFAULT.use_syslog',
    'DEFAULT.syslog_log_facility',
    'DEFAULT.use_journal',
    'DEFAULT.use_json',
    'DEFAULT.use_stderr',
    'DEFAULT.use_eventlog',
    'DEFAULT.log_rotate_interval',
    'DEFAULT.log_rotate_interval_type',
    'DEFAULT.max_logfile_count',
    'DEFAULT.max_logfile_size_mb',
    'DEFAULT.log_rotation_type',
    'DEFAULT.logging_*',
    'DEFAULT.default_log_levels',
    'DEFAULT.publish_errors',
    'DEFAULT.instance_format',
    'DEFAULT.instance_uuid_format',
    'DEFAULT.rate_limit_interval',
    'DEFAULT.rate_limit_burst',
    'DEFAULT.rate_limit_except_level',
    'DEFAULT.fatal_deprecations',
    // oslo.messaging, oslo.service, oslo.concurrency and neutron-server's own settings in neutron.conf
    'DEFAULT.rpc_conn_pool_size',
    'DEFAULT.conn_pool_min_size',
    'DEFAULT.conn_pool_ttl',
    'DEFAULT.executor_thread_pool_size',
    'DEFAULT.rpc_ping_enabled',
    'DEFAULT.backdoor_port',
    'DEFAULT.backdoor_socket',
    'DEFAULT.log_options',
    'DEFAULT.graceful_shutdown_timeout',
    'DEFAULT.run_external_periodic_tasks',
    'DEFAULT.core_plugin',
    'DEFAULT.service_plugins',
    'DEFAULT.auth_strategy',
    'DEFAULT.allow_overlapping_ips',
    'DEFAULT.api_workers',
    'DEFAULT.api_paste_config',
    'DEFAULT.bind_host',
    'DEFAULT.bind_port',
    'DEFAULT.base_mac',
    'DEFAULT.dns_domain',
    'DEFAULT.global_physnet_mtu',
    'DEFAULT.dhcp_agents_per_network',
    'DEFAULT.dhcp_agent_notification',
    'DEFAULT.l3_ha',
    'DEFAULT.router_distributed',
    'DEFAULT.notify_nova_on_port_*',
    'DEFAULT.ipam_driver',
    'DEFAULT.max_l3_agents_per_router',
    'DEFAULT.allow_automatic_l3agent_failover',
    'DEFAULT.allow_automatic_dhcp_failover',
    'DEFAULT.external_dns_driver',
    'DEFAULT.router_scheduler_driver',
    'DEFAULT.network_scheduler_driver',
    'DEFAULT.enable_new_agents',
    'DEFAULT.enable_traditional_dhcp',
    'DEFAULT.vlan_transparent',
    'DEFAULT.filter_validation',
    'DEFAULT.periodic_interval',
    'DEFAULT.periodic_fuzzy_delay',
    'DEFAULT.api_extensions_path',
    'DEFAULT.wsgi_*',
    'DEFAULT.use_ssl',
    'DEFAULT.lock_path',
    'oslo_concurrency.*',
    'oslo_messaging_*.*',
    'oslo_policy.*',
    'oslo_middleware.*',
    'database.*',
    'keystone_authtoken.*',
    'nova.*',
    'placement.*',
    'designate.*',
    'ironic.*',
    'quotas.*',
    'privsep.*',
    'profiler.*',
    'healthcheck.*',
    'cors.*',
    'ssl.*',
    'experimental.*',
    'oslo_reports.*',
    'service_providers.*',
    'octavia.*',
    'ovs_driver.*',
    'sriov_driver.*',
    'network_log.*',
  ],
  notes: {
    'DEFAULT.rpc_response_timeout':
      'port lookups over RPC have their own deadline, rpc_lookup_timeout (an instance must not wait for neutron_lib back-off)',
    'DEFAULT.rpc_response_max_timeout':
      'port lookups over RPC have their own deadline, rpc_lookup_timeout (an instance must not wait for neutron_lib back-off)',
    'oslo_messaging_rabbit.rabbit_transient_quorum_queue':
      "the agent's reply queue is its own: classic, non-durable, removed by x-expires",
    'oslo_messaging_rabbit.use_queue_manager':
      "the agent's reply queue is named reply_<uuid> as oslo's default",
    'DEFAULT.metadata_workers':
      'one process serves every request on one event loop; the work per request is waiting on Nova and Neutron, not CPU',
    'DEFAULT.cache_url':
      'removed in neutron Queens; the port cache is set with port_cache_ttl and port_cache_size',
    'cache.*':
      'the port cache is always on: port_cache_ttl, port_cache_size, negative_cache_ttl; [cache] reads serve_stale_on_outage and stale_max_age only',
    'ovn.ovsdb_retry_max_interval':
      'the Southbound client retries with its own back-off (1 s doubling to 8 s, as OVS does)',
    'ovn.ovsdb_log_level': 'the client logs through the agent log (log_level, debug)',
    'ovn_metadata.*': 'read by ovn-metadata-provisioner, which provisions the ovnmeta namespaces',
  },
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
