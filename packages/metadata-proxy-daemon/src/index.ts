/*
 * @nmp/metadata-proxy-daemon: one process serving instance metadata in many network namespaces. Listening
 * sockets are created inside each namespace by a short-lived helper and handed over; the CLI is
 * `metadata-proxy-daemon` (src/cli.ts).
 */

export { formatAddress, probeSocket } from '@nmp/common';
export { HELPER_PATH, RELAY_PATH } from './helper-scripts.js';
export { type BatchItem, BatchOpener, PYTHON_HELPER, runBatchHelper } from './netns/batch-helper.js';
export { type HelperOptions, runListenerHelper } from './netns/listener-helper.js';
export { HelperError, type HelperResult, type NetnsExec } from './netns/listeners.js';
export { NETNS_DIR, type NetnsId, namespaceId } from './netns/namespace-id.js';
export { daemonOptions } from './options.js';
export {
  type AttachmentState,
  type AttachmentStatus,
  type AttachSpec,
  type ControlRequest,
  type ControlResponse,
  checkAttachSpec,
  type DaemonHealth,
  DaemonRequestError,
  DaemonUnreachableError,
  daemonClient,
  daemonRequest,
  formatDaemonStatus,
  ProtocolError,
  parseRequest,
} from './protocol.js';
export { loadState, STATE_FILE_NAME, StateFile } from './state-file.js';
export { type DaemonSettings, MetadataProxyDaemon, WORKER_PATH } from './supervisor.js';
export {
  ServingWorker,
  type WorkerReply,
  type WorkerRequest,
  type WorkerSettings,
  type WorkerStats,
} from './worker.js';
export { type DaemonConfig, workerSettingsFor } from './worker-settings.js';
