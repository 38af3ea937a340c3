/*
 * The provisioner's configuration: it reads the same files as the agent (neutron.conf and
 * neutron_ovn_metadata_agent.ini): the Southbound and local Open_vSwitch options both OVN programs read
 * (@nmp/ovn), state_path, metadata_proxy_socket / user / group and logging from [DEFAULT], neutron's
 * external_pids, and its own options in [ovn_metadata] (a section the agent ignores). Every other agent
 * option is accepted without effect, so one file serves both programs: the agent's schema comes from its
 * options module alone (@nmp/metadata-agent/options), not with the agent.
 */
import { type CompatibilityList, type ConfigOf, opt } from '@nmp/common';
import { AGENT_COMPAT, agentOptions, agentSchema } from '@nmp/metadata-agent/options';
import { ovnSchema } from '@nmp/ovn';

const G = 'ovn_metadata';

export const provisionerOwnOptions = {
  namespacePrefix: opt.string({
    name: 'namespace_prefix',
    group: G,
    default: 'ovnmeta-',
    flag: 'namespace-prefix',
    help: "Namespaces are this prefix + the network id (neutron's ovnmeta-); every namespace under it is the provisioner's to remove",
    check: (v) => (/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v) ? undefined : 'letters, digits, . _ - only'),
  }),
  ovnBridge: opt.string({
    name: 'ovn_bridge',
    group: G,
    default: '',
    flag: 'ovn-bridge',
    help: "The integration bridge the metadata ports are plugged into; empty: the local database's external_ids:ovn-bridge, else br-int",
  }),
  ovsNamespace: opt.string({
    name: 'ovs_namespace',
    group: G,
    default: '',
    flag: 'ovs-namespace',
    help: "The named network namespace ovs-vswitchd runs in, where each veth's OVS end is created; empty: the provisioner's own (the usual case)",
  }),
  proxyMode: opt.enum({
    name: 'proxy_mode',
    group: G,
    default: 'daemon',
    choices: ['daemon', 'process'] as const,
    flag: 'proxy-mode',
    help: 'daemon: attach each namespace to the one metadata-proxy-daemon; process: a ns-metadata-proxy per namespace',
  }),
  daemonControlSocket: opt.string({
    name: 'daemon_control_socket',
    group: G,
    default: '$state_path/nmp-metadata-proxy-daemon/control.sock',
    flag: 'daemon-control-socket',
    help: "The metadata-proxy-daemon's control socket (proxy_mode = daemon)",
  }),
  proxyCommand: opt.string({
    name: 'ns_metadata_proxy_command',
    group: G,
    default: '',
    flag: 'ns-metadata-proxy-command',
    help: 'The proxy program (proxy_mode = process): a .js file run with this node, or an executable; empty: the one beside us',
  }),
  proxyConfigFiles: opt.list({
    name: 'proxy_config_files',
    group: G,
    default: [],
    flag: 'proxy-config-files',
    help: 'Extra --config-file for every proxy process (timeouts, [metadata_rate_limiting], logging)',
  }),
  externalPids: opt.string({
    name: 'external_pids',
    default: '$state_path/external/pids',
    help: 'Pid files of the proxy processes (<namespace>.pid.ns-metadata-proxy)',
  }),
  stateDir: opt.string({
    name: 'state_dir',
    group: G,
    default: '$state_path/nmp-ovn-provisioner',
    flag: 'provisioner-state-dir',
    help: "status.json (every network's namespace, its state and last error) and the proxy processes' logs",
  }),
  retryMax: opt.float({
    name: 'retry_max',
    group: G,
    default: 300,
    min: 1,
    flag: 'retry-max',
    help: 'Seconds between retries of a network that failed, at most (from 1 s, doubling)',
  }),
  concurrency: opt.int({
    name: 'concurrency',
    group: G,
    default: 4,
    min: 1,
    max: 64,
    flag: 'provision-concurrency',
    help: 'Networks provisioned at once',
  }),
};

export const provisionerSchema = {
  statePath: agentOptions.statePath,
  socketPath: agentOptions.socketPath,
  proxyUser: agentOptions.proxyUser,
  proxyGroup: agentOptions.proxyGroup,
  debug: agentOptions.debug,
  logLevel: agentOptions.logLevel,
  logFile: agentOptions.logFile,
  ...ovnSchema,
  ...provisionerOwnOptions,
};

export type ProvisionerConfig = ConfigOf<typeof provisionerSchema>;

/** The agent's own options (and what it ignores) are accepted quietly: the files are shared. */
export const PROVISIONER_COMPAT: CompatibilityList = {
  ignored: [
    ...AGENT_COMPAT.ignored.filter((p) => p !== 'DEFAULT.external_pids'),
    ...Object.values(agentSchema)
      .filter((d) => !Object.values(provisionerSchema).some((p) => p.group === d.group && p.name === d.name))
      .map((d) => `${d.group}.${d.name}`),
  ],
  notes: { ...(AGENT_COMPAT.notes ?? {}) },
};
