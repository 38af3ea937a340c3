/*
 * @nmp/metadata-hooks: plumbing of instance metadata on a network node (DHCP and router namespaces,
 * iptables, proxy supervision) and the systemd units. The CLI is `metadata-hooks` (src/cli.ts). Commands,
 * namespace addresses and the proxy process manager are @nmp/host's.
 */
export { type DaemonView, daemonView } from './daemon-attach.js';
export { type DhcpAddOptions, dhcpAdd, dhcpRemove } from './dhcp-hooks.js';
export {
  checkHaproxyConfig,
  type HaproxyCompatArgs,
  haproxyKill,
  parseHaproxyArgs,
  removeOrphanLogs,
  startFromHaproxyConfig,
} from './haproxy-compat.js';
export {
  type AddResult,
  HookError,
  type HookRecord,
  type HooksConfig,
  type ProxyAction,
  pidFileFor,
  readRecord,
} from './hook-records.js';
export {
  applyHopLimitRules,
  type HopLimitOptions,
  type HopLimitScope,
  hopLimitChain,
  hopLimitRules,
  removeHopLimitRules,
  syncHopLimit,
  TOKEN_ANSWER_MARK,
} from './hop-limit-rules.js';
export {
  applyMetadataRules,
  type IpFamily,
  listMetadataRules,
  type MetadataRuleOptions,
  metadataRules,
  type OurChain,
  parseIptablesSave,
  planApply,
  planRemove,
  removeMetadataRules,
} from './iptables-rules.js';
export { type L3AddOptions, l3Add, l3Remove } from './l3-hooks.js';
export { haproxyCompatOptions, hooksOptions, parseMark } from './options.js';
export {
  decodeProcAddress,
  formatSocket,
  type ListeningSocket,
  listeningSockets,
  parseProcNetTcp,
} from './proc-sockets.js';
export { proxyArgv, proxyProgram } from './proxy-launch.js';
export {
  expectedSocket,
  formatStatus,
  namespaceOf,
  type ProxyStatus,
  proxyStatus,
  statusOf,
} from './proxy-status.js';
export {
  DEFAULT_UNIT_SETTINGS,
  PROGRAM_PACKAGES,
  type ProgramName,
  renderUnits,
  type UnitSettings,
} from './systemd-units.js';
