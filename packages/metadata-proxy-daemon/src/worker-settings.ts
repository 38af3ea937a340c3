/*
 * The daemon's configuration as its serving worker takes it: the proxy's serving settings of the same
 * options (servingSettings: limits and timeouts in ms, connection caps, rate limiting, the SSRF defences,
 * whether metrics are kept), the agent's socket and logging. Plain data: it goes to the worker over IPC.
 */
import type { ConfigOf } from '@nmp/common';
import { type ServingSettings, servingSettings } from '@nmp/ns-metadata-proxy';
import type { daemonOptions } from './options.js';
import type { WorkerSettings } from './worker.js';

export type DaemonConfig = ConfigOf<typeof daemonOptions>;

export function workerSettingsFor(
  config: DaemonConfig,
  serving: ServingSettings = servingSettings(config),
): WorkerSettings {
  return {
    socketPath: config.socketPath,
    limits: serving.limits,
    ...(serving.rateLimit ? { rateLimit: serving.rateLimit } : {}),
    ...(serving.ssrf ? { ssrf: serving.ssrf } : {}),
    // The supervisor serves them on the admin socket; without one, none are kept.
    metrics: serving.adminSocket !== '',
    logLevel: config.debug ? 'debug' : config.logLevel,
    ...(config.logFile ? { logFile: config.logFile } : {}),
  };
}
