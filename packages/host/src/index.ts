/*
 * @nmp/host: the host plumbing of the programs that set up a network node (metadata-hooks, the
 * metadata-proxy-daemon, ovn-metadata-provisioner): commands run as argv arrays, named namespaces and the
 * addresses in them, the proxy's command line, proxy processes supervised by pid file, and every child
 * process started without our secrets. Node's own modules and @nmp/common only. A program that needs only
 * commands or only the clean spawn imports `@nmp/host/command` or `@nmp/host/spawn` (the hooks at every
 * start, the daemon), and loads nothing else of this package.
 */
export { CommandError, type CommandResult, inNamespace, type RunOptions, run } from './command.js';
export { type DetachedProcess, fileSize, logTail, startDetached } from './detached.js';
export {
  type DadOutcome,
  type DeviceAddress,
  deviceAddresses,
  ensureAddress,
  ipv6Enabled,
  METADATA_V4_CIDR,
  METADATA_V6_CIDR,
  removeAddress,
  waitForDad,
} from './namespace-addresses.js';
export { listNamespaces, namespaceExists } from './namespaces.js';
export {
  activePid,
  launchHash,
  type ManagerTimeouts,
  type ProxyLaunch,
  ProxyStartError,
  processInfo,
  readPidFile,
  type StartAction,
  startProxy,
  stopProxy,
} from './process-manager.js';
export {
  PROXY_CLI,
  type ProxyCommandSpec,
  proxyArgv,
  proxyProgram,
} from './proxy-command.js';
export {
  type CleanForkOptions,
  type CleanSpawnOptions,
  forkWithoutSecrets,
  spawnWithoutSecrets,
} from './spawn.js';
