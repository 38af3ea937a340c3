/*
 * The proxy's configuration schema. Timeouts use the names of neutron's [metadata_haproxy] section and
 * rate limits those of [metadata_rate_limiting] (reference.md §11), so the same values carry over.
 */
import {
  adminSocketOption,
  type ConfigOf,
  type IdentityMode,
  isNeutronId,
  loggingOptions,
  opt,
  type ProxyIdentity,
  UsageError,
} from '@nmp/common';
import { ssrfOptions } from './ssrf/options.js';

export const proxyOptions = {
  bind: opt.list({
    name: 'bind',
    default: [],
    help: 'Listen address ADDRESS:PORT, repeatable: 169.254.169.254:80, [fe80::a9fe:a9fe%tap0]:80, [::]:9697',
  }),
  networkId: opt.string({
    name: 'network_id',
    default: '',
    help: 'Stamp X-Neutron-Network-ID with this network',
  }),
  routerId: opt.string({
    name: 'router_id',
    default: '',
    help: 'Stamp X-Neutron-Router-ID with this router',
  }),
  ovnNetworkId: opt.string({
    name: 'ovn_network_id',
    default: '',
    help: 'Stamp X-OVN-Network-ID with this network (an ovnmeta-<network> namespace of ML2/OVN)',
  }),
  socketPath: opt.string({
    name: 'metadata_proxy_socket',
    default: '/var/lib/neutron/metadata_proxy',
    help: "The agent's UNIX socket",
  }),
  haproxyConfig: opt.string({
    name: 'haproxy_config',
    default: '',
    help: "Take binds, socket, id, pid file, user/group, timeouts and rate limits from neutron's generated haproxy config",
  }),
  pidFile: opt.string({ name: 'pid_file', default: '', help: 'Write the pid here once listening' }),
  user: opt.string({
    name: 'metadata_proxy_user',
    default: '',
    help: 'Drop to this user (name or uid) after binding; empty = stay',
  }),
  group: opt.string({
    name: 'metadata_proxy_group',
    default: '',
    help: 'Drop to this group (name or gid) after binding; empty = stay',
  }),
  timeoutHttpRequest: opt.int({
    name: 'timeout_http_request',
    group: 'metadata_haproxy',
    default: 30,
    min: 1,
    help: 'Seconds for a client to send a complete request header (408)',
  }),
  timeoutHttpKeepAlive: opt.int({
    name: 'timeout_http_keep_alive',
    group: 'metadata_haproxy',
    default: 30,
    min: 1,
    help: 'Seconds an idle client keep-alive connection stays open',
  }),
  timeoutServer: opt.int({
    name: 'timeout_server',
    group: 'metadata_haproxy',
    default: 32,
    min: 1,
    help: 'Seconds to wait for the agent to answer (504)',
  }),
  timeoutClient: opt.int({
    name: 'timeout_client',
    group: 'metadata_haproxy',
    default: 32,
    min: 1,
    help: 'Seconds of client inactivity while a request is in progress',
  }),
  timeoutConnect: opt.int({
    name: 'timeout_connect',
    group: 'metadata_haproxy',
    default: 30,
    min: 1,
    help: 'Seconds to connect to the agent socket',
  }),
  maxConnections: opt.int({
    name: 'max_connections',
    default: 1024,
    min: 1,
    help: 'Concurrent client connections at most; more are refused',
  }),
  maxConnectionsPerSource: opt.int({
    name: 'max_connections_per_source',
    default: 100,
    min: 1,
    help: 'Concurrent client connections one source address may hold; more are refused at once, so one instance cannot take every slot of max_connections',
  }),
  timeoutFirstByte: opt.float({
    name: 'timeout_first_byte',
    default: 5,
    min: 0,
    help: 'Seconds a new client connection may stay silent before it is closed unanswered (a real client sends its request at once); 0 = only timeout_http_request applies',
  }),
  maxHeaderSize: opt.int({
    name: 'max_header_size',
    default: 16384,
    min: 1024,
    help: 'Largest request header block in bytes (431 above)',
  }),
  maxBodySize: opt.int({
    name: 'max_body_size',
    default: 65536,
    min: 0,
    help: 'Largest request body in bytes (413 above)',
  }),
  backlog: opt.int({ name: 'backlog', default: 4096, min: 1, help: 'Listen backlog' }),
  agentConnections: opt.int({
    name: 'agent_connections',
    default: 128,
    min: 1,
    help: 'Keep-alive connections to the agent at most',
  }),
  rateLimitEnabled: opt.bool({
    name: 'rate_limit_enabled',
    group: 'metadata_rate_limiting',
    default: false,
    help: 'Limit requests per source address (429)',
  }),
  rateLimitIpVersions: opt.list({
    name: 'ip_versions',
    group: 'metadata_rate_limiting',
    default: ['4', '6'],
    help: 'Address families limited (unlike haproxy, both at once is supported)',
  }),
  baseWindow: opt.int({
    name: 'base_window_duration',
    group: 'metadata_rate_limiting',
    default: 10,
    min: 1,
    help: 'Seconds of the base window',
  }),
  baseLimit: opt.int({
    name: 'base_query_rate_limit',
    group: 'metadata_rate_limiting',
    default: 10,
    min: 1,
    help: 'Requests allowed per source in the base window',
  }),
  burstWindow: opt.int({
    name: 'burst_window_duration',
    group: 'metadata_rate_limiting',
    default: 10,
    min: 1,
    help: 'Seconds of the burst window',
  }),
  burstLimit: opt.int({
    name: 'burst_query_rate_limit',
    group: 'metadata_rate_limiting',
    default: 10,
    min: 1,
    help: 'Requests allowed per source in the burst window',
  }),
  ...loggingOptions,
  adminSocket: adminSocketOption({
    default: '',
    where: '; empty = none. Never a TCP port: the proxy runs in a tenant namespace',
  }),
  ...ssrfOptions,
};

/** The option that names the id of each mode, and its flag. */
export const ID_OPTIONS = { network: 'networkId', router: 'routerId', ovn: 'ovnNetworkId' } as const;
const ID_FLAGS: Readonly<Record<IdentityMode, string>> = {
  network: '--network-id',
  router: '--router-id',
  ovn: '--ovn-network-id',
};

/** The one identity a proxy stamps: exactly one of --network-id, --router-id and --ovn-network-id. */
export function proxyIdentity(
  config: Pick<ConfigOf<typeof proxyOptions>, (typeof ID_OPTIONS)[IdentityMode]>,
): ProxyIdentity {
  const given = (Object.keys(ID_OPTIONS) as IdentityMode[]).filter((m) => config[ID_OPTIONS[m]] !== '');
  if (given.length > 1)
    throw new UsageError(
      `give only one of --network-id, --router-id and --ovn-network-id (got ${given.map((m) => ID_FLAGS[m]).join(' and ')})`,
    );
  if (given.length === 0)
    throw new UsageError('one of --network-id, --router-id or --ovn-network-id is required');
  const mode = given[0]!;
  const id = config[ID_OPTIONS[mode]];
  if (!isNeutronId(id)) throw new UsageError(`invalid ${mode} id '${id}'`);
  return { mode, id };
}
