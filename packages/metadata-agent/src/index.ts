/*
 * @nmp/metadata-agent: the node agent between the proxies' UNIX socket and Nova's metadata API.
 */
export {
  type AdminBind,
  AdminServer,
  type AdminServerOptions,
  isLoopback,
  parseAdminBind,
  readinessText,
} from './admin-server.js';
export { MetadataAgent, type MetadataAgentOptions } from './agent.js';
export { AgentHandler, type AgentHandlerOptions } from './handler.js';
export {
  AgentMetrics,
  type AgentMetricsOptions,
  LATENCY_BUCKETS,
  type MetricSources,
  type RequestMode,
} from './metrics.js';
export {
  createNeutronResolver,
  NeutronResolver,
  type NeutronResolverOptions,
  type NeutronResolverStats,
  neutronResolverOptions,
  portCacheOptions,
  type ResolverConfig,
  resolverSchema,
} from './neutron/index.js';
export { NovaClient, type NovaClientOptions, novaError } from './nova-client.js';
export { AGENT_COMPAT, agentOptions, agentSchema, socketModeFor } from './options.js';
export {
  type LivenessOptions,
  type LivenessStats,
  MetadataLiveness,
  metadataAgentId,
  OVN_METADATA_UUID_NAMESPACE,
  uuid5,
} from './ovn/liveness.js';
export {
  livenessMaxDelaySeconds,
  type OvnResolverConfig,
  ovnResolverSchema,
} from './ovn/options.js';
export { OvnMetadataService, OvnResolver, type OvnServiceOptions } from './ovn/ovn-service.js';
export { type IndexedPort, PortBindingIndex } from './ovn/port-index.js';
export {
  Readiness,
  type ReadinessOptions,
  type ReadinessReport,
  type UpstreamCheck,
} from './readiness.js';
export {
  type AgentConfig,
  ConfigReloader,
  effectiveLevel,
  LIVE_OPTIONS,
  logConfigWarnings,
  NEUTRON_CREDENTIAL_OPTIONS,
  type ReloadOutcome,
  type ReloadTargets,
} from './reload.js';
export { type RequestIdentity, readRequestIdentity } from './request-identity.js';
export {
  type CacheStats,
  CachingResolver,
  type CachingResolverOptions,
} from './resolver/caching-resolver.js';
export { InventoryResolver } from './resolver/inventory-resolver.js';
export { lookupTarget, pickPort } from './resolver/port-match.js';
export {
  type BuildExtras,
  buildResolver,
  chooseResolver,
  type ResolverChoice,
  type ResolverKind,
  type ResolverParts,
} from './resolver-factory.js';
export {
  AGENT_TYPE_METADATA,
  addressFilters,
  adminContext,
  BrokerConnection,
  buildMessage,
  createRpcResolver,
  decodeEnvelope,
  decodeReply,
  describeTransport,
  effectiveRpcConfig,
  encodeEnvelope,
  getPortsRequest,
  PLUGIN_TOPIC,
  parseTransportUrl,
  REPORT_STATE_VERSION,
  REPORTS_TOPIC,
  RpcClient,
  type RpcConfig,
  RpcMetrics,
  type RpcParts,
  RpcResolver,
  routerFilters,
  rpcSchema,
  StateReporter,
  type TransportUrl,
} from './rpc/index.js';
export { InstanceSigner } from './signer.js';
export { type UpstreamName, type UpstreamObserver, UpstreamTelemetry } from './upstream-observer.js';
export { VERSION } from './version.js';
