/*
 * @nmp/common: what the proxy, the agent, the hooks and the development Nova share.
 */
export {
  canonicalIp,
  forwardedForFromPeer,
  type LookupAddress,
  macFromEui64,
  normaliseMac,
  parseForwardedFor,
} from './address.js';
export { ADMIN_TCP, ADMIN_UNIX, AdminListener } from './admin-listener.js';
export { createCli, runMain, stopOnSignals, UsageError } from './cli.js';
export {
  addSchemaOptions,
  ConfigError,
  describeConfig,
  envName,
  flagName,
  type LoadedConfig,
  loadConfig,
} from './config/load.js';
export { type CompatibilityList, type ConfigOf, type OptionDef, opt, type Schema } from './config/schema.js';
export { adminSocketOption, loggingOptions, stateOptions } from './config/shared-options.js';
export {
  ERRORS,
  type ErrorCode,
  type ErrorSpec,
  errorBody,
  type LogLevel,
  MetadataError,
  PROGRAM_ERRORS,
  type ProgramErrorCode,
  type ProgramErrorSpec,
  TEXT_PLAIN,
} from './errors.js';
export {
  notifySystemd,
  type PassedDescriptor,
  type Predecessor,
  type Successor,
  takePredecessor,
} from './handover.js';
export {
  type BindAddress,
  BindSpecError,
  formatAddress,
  formatHostPort,
  listenHost,
  parseBind,
} from './host-port.js';
export {
  HEADER_FORWARDED,
  HEADER_FORWARDED_FOR,
  HEADER_INSTANCE_ID,
  HEADER_NETWORK_ID,
  HEADER_OVN_NETWORK_ID,
  HEADER_PROVIDER,
  HEADER_PROVIDER_SIGNATURE,
  HEADER_REQUEST_ID,
  HEADER_ROUTER_ID,
  HEADER_SIGNATURE,
  HEADER_TENANT_ID,
  HOP_BY_HOP_HEADERS,
  IDENTITY_HEADER_NAME,
  IDENTITY_HEADERS,
  IDENTITY_MODES,
  type IdentityMode,
  type ProxyIdentity,
} from './identity-headers.js';
export { LAG_LIMIT_MS, LAG_PERIOD_MS, LagGate, type LagGateOptions, processLag } from './lag-gate.js';
export {
  boundAs,
  type InheritedListener,
  InheritedListeners,
  listenerFd,
  listenOnInherited,
  takeInheritedListeners,
  unixSocketName,
} from './listen-fds.js';
export {
  LOG_EVENTS,
  LogEvent,
  type LogEventCode,
  type LogEventSpec,
  type ProgramName,
} from './log-events.js';
export {
  addDetails,
  createLogger,
  type Logger,
  type LoggerSettings,
  REDACT_PATHS,
  silentLogger,
  writeInfoLine,
} from './logger.js';
export {
  addProcessMetrics,
  type Counter,
  type Gauge,
  type Histogram,
  type Labelled,
  Registry,
} from './metrics.js';
export { isNeutronId, NEUTRON_ID_PATTERN } from './neutron-id.js';
export { packageVersion, releaseRoot } from './package-version.js';
export {
  type InstanceIdentity,
  type InstanceResolver,
  type LookupMode,
  type LookupQuery,
  type NeutronPort,
  type ResolveOptions,
  ROUTER_INTERFACE_OWNERS,
} from './resolver.js';
export { SERVICE_NODE_FLAGS, withoutSecrets } from './runtime.js';
export { signInstanceId, verifyInstanceSignature } from './signature.js';
export { claimSocketPath, listenOnSocketPath, probeSocket, removeSocketFile } from './unix-socket.js';
