/*
 * @nmp/testkit: helpers shared by the test suites. `netns.ts` is the harness for tests that run as root
 * inside real network namespaces (skipped with a reason otherwise); `rabbitmq.ts` starts a throwaway
 * RabbitMQ node; `neutron-rpc.ts` runs neutron's own RPC server code (Debian's python3-neutron) on it.
 */

export {
  type Chain,
  type ChainOptions,
  CLI,
  type CliOptions,
  freePort,
  type Nova,
  type NovaOptions,
  type Owner,
  SAMPLE_INSTANCE,
  SAMPLE_INSTANCES_FILE,
  SAMPLE_INVENTORY_FILE,
  SAMPLE_NETWORK,
  SAMPLE_PROJECT,
  SAMPLE_RESOLVER_ARGS,
  type Service,
  type ServiceOptions,
  SOURCE_ROOT,
  serviceEnv,
  spawnService,
  startAgentCli,
  startChain,
  startNova,
  startNovaCli,
  startProxyCli,
  tail,
  tempDir,
  until,
  waitForConnect,
} from './chain.js';
export { captureLogs, type LogCapture } from './logs.js';
export {
  ExecError,
  type ExecOptions,
  type ExecResult,
  HttpGetError,
  type HttpOptions,
  type HttpRequestSpec,
  type HttpResult,
  httpInNamespace,
  isProcessAlive,
  type LabOptions,
  MAX_DEVICE_NAME,
  NetnsLab,
  type NsChild,
  requireRoot,
  rootSkipReason,
  runCommand,
  type SpawnInNsOptions,
  sleep,
  uniquePrefix,
  type VethOptions,
} from './netns.js';
export {
  DEBIAN_PYTHON,
  type GetPortsEvent,
  NEUTRON_RPC_SERVER_SCRIPT,
  type NeutronRpcServer,
  type NeutronRpcServerOptions,
  neutronPythonSkipReason,
  type ReportEvent,
  requireNeutronPython,
  type ServerEvent,
  startNeutronRpcServer,
} from './neutron-rpc.js';
export {
  type NeutronPortSpec,
  OVN_SANDBOX_FILES,
  OVN_SANDBOX_TOOLS,
  OvnSandbox,
  type SandboxVm,
} from './ovn-sandbox.js';
export { type SbPortSpec, sbOps, uuidRef } from './ovn-sb.js';
export {
  makeTestPki,
  OVN_NB_SCHEMA,
  OVN_SB_SCHEMA,
  type OvsdbCluster,
  OvsdbServer,
  type OvsdbServerOptions,
  requireTools,
  type SslFiles,
  startOvsdbCluster,
  VSWITCH_SCHEMA,
} from './ovsdb-server.js';
export { freeLowPort } from './ports.js';
export { promSample, promValue } from './prometheus.js';
export {
  type RabbitNode,
  type RabbitOptions,
  rabbitSkipReason,
  requireRabbit,
  startRabbitNode,
  waitUntil,
} from './rabbitmq.js';
export {
  type HolderSockets,
  SOCKET_HOLDER_SCRIPT,
  type SocketHolder,
  startSocketHolder,
} from './socket-holder.js';
export { type UnixHttpAnswer, unixHttpGet } from './unix-http.js';
