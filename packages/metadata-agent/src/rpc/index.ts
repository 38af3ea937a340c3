/*
 * The RPC resolver's public surface, for the agent's wiring (src/index.ts re-exports what it needs).
 */
export {
  BrokerConnection,
  type BrokerSettings,
  type BrokerStats,
  type LoginMethod,
} from './broker-connection.js';
export {
  createRpcResolver,
  type ReportFacts,
  type RpcOptions,
  type RpcParts,
  startRpcResolver,
} from './create.js';
export {
  adminContext,
  buildMessage,
  CONTENT_ENCODING,
  CONTENT_TYPE,
  type DecodedReply,
  decodeEnvelope,
  decodeReply,
  ENVELOPE_VERSION,
  encodeEnvelope,
  pythonTimestamp,
  type RemoteFailure,
  type RpcRequest,
} from './envelope.js';
export { type BatchLane, LookupBatcher, type LookupBatcherStats } from './lookup-batcher.js';
export { RPC_BUCKETS, type RpcMetricSources, RpcMetrics } from './metrics.js';
export { type RpcConfig, rpcSchema, tlsVersion, URL_QUERY_OPTIONS } from './options.js';
export { type CallOutcome, RpcClient, type RpcClientStats, type RpcObserver } from './rpc-client.js';
export {
  addressFilters,
  getPortsRequest,
  ipFilters,
  METADATA_API_VERSION,
  macFilters,
  PLUGIN_TOPIC,
  type PortFilters,
  RpcResolver,
  type RpcResolverStats,
  type RpcSourceOptions,
  routerFilters,
  routersFilters,
} from './rpc-resolver.js';
export {
  brokerTls,
  type ConfigWarning,
  effectiveRpcConfig,
  type RpcSettings,
  rpcSettings,
} from './settings.js';
export {
  AGENT_TYPE_METADATA,
  REPORT_STATE_VERSION,
  REPORTS_TOPIC,
  reportTime,
  StateReporter,
  type StateReporterStats,
} from './state-reporter.js';
export {
  describeTransport,
  hostLabel,
  parseTransportUrl,
  type RabbitHost,
  type TransportUrl,
} from './transport-url.js';
