/*
 * @nmp/host: the host plumbing of the programs that set up a network node (metadata-hooks, the
 * metadata-proxy-daemon, ovn-metadata-provisioner): commands run as argv arrays, named namespaces and the
 * addresses in them, the proxy's command line, proxy processes supervised by pid file, and every child
 * process started without our secrets. Node's own modules and @nmp/common only. A program that needs only
 * commands or only the clean spawn imports `@nmp/host/command` or `@nmp/host/spawn` (the hooks at every
 * start, the daemon), and loads nothing else of this package.
 */
export { inNamespace, run } from './command.js';
export { fileSize, logTail, startDetached } from './detached.js';
export {
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
  processInfo,
  readPidFile,
  type StartAction,
  startProxy,
  stopProxy,
} from './process-manager.js';
export { proxyArgv, proxyProgram } from './proxy-command.js';
