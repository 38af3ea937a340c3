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
export {
  ADMIN_TCP,
  ADMIN_UNIX,
  AdminListener,
  type AdminRoutes,
  adminRequestListener,
  type ReadyAnswer,
} from './admin-listener.js';
export { createCli, type HandOverSteps, runMain, stopOnSignals, UsageError } from './cli.js';
export { type IniEntry, IniSyntaxError, parseIni } from './config/ini.js';
export {
  addSchemaOptions,
  ConfigError,
  describeConfig,
  type ExposedSecretFile,
  envName,
  flagName,
  type LoadedConfig,
  type LoadOptions,
  loadConfig,
} from './config/load.js';
export {
  type CompatibilityList,
  type ConfigOf,
  type OptionDef,
  type OptionKind,
  opt,
  type Schema,
} from './config/schema.js';
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
  ownCommand,
  type PassedDescriptor,
  type Predecessor,
  type Successor,
  type SuccessorOptions,
  startSuccessor,
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
  HEADER_FORWARDED_FOR,
  HEADER_INSTANCE_ID,
  HEADER_NETWORK_ID,
  HEADER_OVN_NETWORK_ID,
  HEADER_REQUEST_ID,
  HEADER_ROUTER_ID,
  HEADER_SIGNATURE,
  HEADER_TENANT_ID,
  HOP_BY_HOP_HEADERS,
  IDENTITY_HEADERS,
} from './identity-headers.js';
export {
  boundAs,
  type InheritedListener,
  InheritedListeners,
  listenerFd,
  listenOnInherited,
  SD_LISTEN_FDS_START,
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
  type HistogramOptions,
  type Labelled,
  type LabelledOptions,
  type LabelValue,
  type LabelValues,
  type MetricOptions,
  PROMETHEUS_CONTENT_TYPE,
  Registry,
  type ValueOptions,
} from './metrics.js';
export { isNeutronId, NEUTRON_ID_PATTERN } from './neutron-id.js';
export { packageVersion, releaseRoot } from './package-version.js';
export {
  type InstanceIdentity,
  type InstanceResolver,
  type LookupMode,
  type LookupQuery,
  type ResolveOptions,
  ROUTER_INTERFACE_OWNERS,
} from './resolver.js';
export { SERVICE_NODE_FLAGS, withoutSecrets } from './runtime.js';
export { signInstanceId, verifyInstanceSignature } from './signature.js';
export {
  type ClaimOptions,
  claimSocketPath,
  listenOnSocketPath,
  probeSocket,
  removeSocketFile,
  type SocketListenOptions,
} from './unix-socket.js';
