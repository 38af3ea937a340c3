/*
 * The hooks' configuration schema. Names are neutron's where neutron has the option (reference.md §11:
 * state_path, metadata_proxy_socket, metadata_proxy_user/group, metadata_port, metadata_access_mark,
 * external_pids), so the values can be copied from dhcp_agent.ini / l3_agent.ini. The rest says how the
 * proxy is launched (a process per namespace, or listeners in the one daemon: proxy_mode) and how
 * namespaces are named.
 */
import { opt, stateOptions } from '@nmp/common';

export const hooksOptions = {
  ...stateOptions,
  proxyUser: opt.string({
    name: 'metadata_proxy_user',
    default: '',
    help: 'User (name or uid) the proxies drop to after binding; empty = stay root',
  }),
  proxyGroup: opt.string({
    name: 'metadata_proxy_group',
    default: '',
    help: 'Group (name or gid) the proxies drop to after binding; empty = stay',
  }),
  metadataPort: opt.int({
    name: 'metadata_port',
    default: 9697,
    min: 1,
    max: 65535,
    help: 'Port the router-namespace proxy listens on (REDIRECT target)',
  }),
  accessMark: opt.string({
    name: 'metadata_access_mark',
    default: '0x1',
    help: 'Packet mark (low 16 bits, mask 0xffff) for metadata traffic from qr- devices',
    check: (v) => (parseMark(v) === undefined ? 'expected a number 1-0xffff (e.g. 0x1)' : undefined),
  }),
  externalPids: opt.string({
    name: 'external_pids',
    default: '$state_path/external/pids',
    help: "Directory of the proxies' pid files (<id>.pid.ns-metadata-proxy)",
  }),
  hooksStateDir: opt.string({
    name: 'hooks_state_dir',
    default: '$state_path/nmp-metadata-hooks',
    help: 'What the hooks added per network/router (addresses, rules, launch), and proxy output logs',
  }),
  proxyCommand: opt.string({
    name: 'ns_metadata_proxy_command',
    default: '',
    help: 'The ns-metadata-proxy program: a .js file (run with this node) or an executable; empty = the one installed beside the hooks',
  }),
  proxyConfigFiles: opt.list({
    name: 'proxy_config_files',
    default: [],
    help: 'Config files passed to every proxy with --config-file (timeouts, [metadata_rate_limiting], logging)',
  }),
  dhcpNamespacePrefix: opt.string({
    name: 'dhcp_namespace_prefix',
    default: 'qdhcp-',
    help: 'Namespace of a network is this prefix + network id',
  }),
  routerNamespacePrefix: opt.string({
    name: 'router_namespace_prefix',
    default: 'qrouter-',
    help: 'Namespace of a router is this prefix + router id',
  }),
  routerInterfaceMatch: opt.string({
    name: 'router_interface_match',
    default: 'qr-+',
    help: "iptables -i match of the router's internal (tenant) devices",
    check: (v) =>
      /^[A-Za-z0-9_.:@-]{1,15}\+?$/.test(v) ? undefined : 'expected an interface name or prefix+',
  }),
  chainPrefix: opt.string({
    name: 'iptables_chain_prefix',
    default: 'nmp-metadata',
    help: 'Our iptables chains are <prefix>-PREROUTING, <prefix>-INPUT, <prefix>-FORWARD',
    check: (v) =>
      /^[A-Za-z][A-Za-z0-9_-]{0,17}$/.test(v) ? undefined : 'expected 1-18 letters, digits, - or _',
  }),
  dadTimeout: opt.float({
    name: 'ipv6_dad_timeout',
    default: 10,
    min: 0.1,
    help: 'Seconds to wait for IPv6 DAD on fe80::a9fe:a9fe before falling back to IPv4 only',
  }),
  startTimeout: opt.float({
    name: 'proxy_start_timeout',
    default: 10,
    min: 0.1,
    help: 'Seconds to wait for a started proxy to write its pid file (it does so once listening)',
  }),
  proxyMode: opt.enum({
    name: 'proxy_mode',
    default: 'process',
    choices: ['process', 'daemon'] as const,
    help: 'process: one ns-metadata-proxy per namespace, started by the hooks; daemon: listeners in the one metadata-proxy-daemon (nmp-metadata-proxy-daemon.service)',
  }),
  hopLimit: opt.enum({
    name: 'hop_limit',
    default: 'off',
    choices: ['off', 'token', 'all'] as const,
    help: 'With [metadata_ssrf] token_mode on: make session-token answers leave the namespace with IP TTL / hop limit 1 (token), or every answer of the proxy port (all), so a container or VM behind the guest cannot use them',
  }),
  daemonControlSocket: opt.string({
    name: 'daemon_control_socket',
    default: '$state_path/nmp-metadata-proxy-daemon/control.sock',
    help: "The metadata-proxy-daemon's control socket (proxy_mode = daemon)",
  }),
  killTimeout: opt.float({
    name: 'proxy_kill_timeout',
    default: 5,
    min: 0,
    help: 'Seconds between SIGTERM and SIGKILL when stopping a proxy',
  }),
};

/**
 * What `haproxy-compat` reads (neutron's haproxy, through the drop-in). neutron runs it with haproxy's
 * arguments alone, so it has no --config-file and no flags of ours: these come from the environment
 * (NMP_<OPTION>), set for the DHCP and L3 agents, or their defaults.
 */
export const haproxyCompatOptions = {
  proxyCommand: hooksOptions.proxyCommand,
  logDir: opt.string({
    name: 'haproxy_compat_log_dir',
    default: '',
    flag: false,
    help: "Directory for the proxies' output logs (<config file name>.log); empty = beside the config neutron wrote (neutron deletes the config, not the log)",
  }),
};

/** `0x1`, `1`, `0x10` -> number within the 16-bit mark space; undefined when invalid. */
export function parseMark(text: string): number | undefined {
  const t = text.trim();
  const n = /^0x[0-9a-f]+$/i.test(t) ? Number.parseInt(t, 16) : /^\d+$/.test(t) ? Number(t) : Number.NaN;
  return Number.isInteger(n) && n >= 1 && n <= 0xffff ? n : undefined;
}
