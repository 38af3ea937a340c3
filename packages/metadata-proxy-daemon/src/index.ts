/*
 * @nmp/metadata-proxy-daemon: one process serving instance metadata in many network namespaces. Listening
 * sockets are created inside each namespace by a short-lived helper and handed over; the CLI is
 * `metadata-proxy-daemon` (src/cli.ts).
 */

export { HELPER_PATH, RELAY_PATH } from './helper-scripts.js';
export { daemonOptions } from './options.js';
export { daemonClient } from './protocol.js';
export { WORKER_PATH } from './supervisor.js';
