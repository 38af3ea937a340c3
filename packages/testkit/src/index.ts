/*
 * @nmp/testkit: helpers shared by the test suites. `netns.ts` is the harness for tests that run as root
 * inside real network namespaces (skipped with a reason otherwise).
 */

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
  type NeutronPortSpec,
  OVN_SANDBOX_FILES,
  OVN_SANDBOX_TOOLS,
  OvnSandbox,
  type SandboxVm,
} from './ovn-sandbox.js';
export { type SbPortSpec, sbOps, uuidRef } from './ovn-sb.js';
export {
  freeLowPort,
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
export { promSample, promValue } from './prometheus.js';
export { type UnixHttpAnswer, unixHttpGet } from './unix-http.js';
