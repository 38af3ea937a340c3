/*
 * @nmp/metadata-proxy-daemon/client: what talks to a running daemon over its control socket (the hooks
 * in daemon mode, `metadata-proxy-daemon status`), without the daemon itself: importing this loads the
 * protocol only, not the supervisor, the worker or the proxy they serve with.
 */
export {
  type AttachmentState,
  type AttachmentStatus,
  type AttachSpec,
  type DaemonHealth,
  DaemonRequestError,
  DaemonUnreachableError,
  daemonClient,
  formatDaemonStatus,
} from './protocol.js';
