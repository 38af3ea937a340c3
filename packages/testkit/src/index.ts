/*
 * @nmp/testkit: helpers shared by the test suites. `netns.ts` is the harness for tests that run as root
 * inside real network namespaces (skipped with a reason otherwise); `rabbitmq.ts` starts a throwaway
 * RabbitMQ node; `neutron-rpc.ts` runs neutron's own RPC server code (Debian's python3-neutron) on it.
 */

export {
  agentCliArgs,
  type Chain,
  type ChainOptions,
  CLI,
  type CliOptions,
  freePort,
  type Nova,
  type NovaOptions,
  type Owner,
  proxyCliArgs,
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
export { behindGate, type HandDrivenLagGate, handDrivenLagGate, keepingUpGate } from './lag-gate.js';
export { captureLogs, type LogCapture, logFileLines, parseLogLines } from './logs.js';
export {
  HttpGetError,
  isProcessAlive,
  NetnsLab,
  type NsChild,
  requireRoot,
  rootSkipReason,
  runCommand,
  sleep,
  uniquePrefix,
} from './netns.js';
export {
  DEBIAN_PYTHON,
  type NeutronRpcServer,
  neutronPythonSkipReason,
  type ReportEvent,
  requireNeutronPython,
  startNeutronRpcServer,
} from './neutron-rpc.js';
export { OVN_SANDBOX_FILES, OVN_SANDBOX_TOOLS, OvnSandbox } from './ovn-sandbox.js';
export { sbOps } from './ovn-sb.js';
export {
  makeTestPki,
  OVN_SB_SCHEMA,
  OvsdbServer,
  requireTools,
  startOvsdbCluster,
  VSWITCH_SCHEMA,
} from './ovsdb-server.js';
export { inParallel } from './parallel.js';
export { freeLowPort } from './ports.js';
export { promSample, promValue } from './prometheus.js';
export { type RabbitNode, rabbitSkipReason, requireRabbit, startRabbitNode, waitUntil } from './rabbitmq.js';
export { SOCKET_HOLDER_SCRIPT, startSocketHolder } from './socket-holder.js';
export { unixHttpGet } from './unix-http.js';
