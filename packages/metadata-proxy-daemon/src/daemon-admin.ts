/*
 * The daemon's admin socket (admin_socket): /metrics, /healthz, /readyz, served by the supervisor on a
 * root-only UNIX socket it claims as root. The request figures are the serving worker's (its ProxyMetrics,
 * the nmp_proxy_* families and its process_* ones, fetched over IPC at scrape time); the supervisor adds
 * what only it knows: attachments by state and worker restarts. /readyz is 200 while a worker serves.
 *
 * Families of the supervisor:
 *   nmp_daemon_attachments{state}         attachments by state (listening, attaching, namespace-missing, failed)
 *   nmp_daemon_worker_up                  1 while a serving worker runs, else 0
 *   nmp_daemon_worker_restarts_total      serving workers started again after one exited
 */
import { AdminListener, type PassedDescriptor, Registry } from '@nmp/common';
import type { AttachmentState } from './protocol.js';

const STATES: readonly AttachmentState[] = ['listening', 'attaching', 'namespace-missing', 'failed'];

export interface DaemonAdminSources {
  /** The worker's metrics text; undefined when no worker answers (its families are then left out). */
  readonly workerMetrics: () => Promise<string | undefined>;
  readonly workerRunning: () => boolean;
  readonly workerRestarts: () => number;
  readonly attachmentStates: () => Iterable<AttachmentState>;
}

export class DaemonAdmin {
  readonly #registry = new Registry();
  readonly #listener: AdminListener;

  constructor(sources: DaemonAdminSources) {
    const byState = this.#registry.gauge({
      name: 'nmp_daemon_attachments',
      help: 'Attachments (namespaces) by state',
      labelNames: ['state'],
      collect: () => {
        const counts = new Map<AttachmentState, number>(STATES.map((s) => [s, 0]));
        for (const s of sources.attachmentStates()) counts.set(s, (counts.get(s) ?? 0) + 1);
        for (const [state, n] of counts) byState.labels(state).set(n);
      },
    });
    this.#registry.gauge({
      name: 'nmp_daemon_worker_up',
      help: '1 while a serving worker runs, else 0',
      value: () => (sources.workerRunning() ? 1 : 0),
    });
    this.#registry.counter({
      name: 'nmp_daemon_worker_restarts_total',
      help: 'Serving workers started again after one exited',
      value: sources.workerRestarts,
    });
    const registry = this.#registry;
    this.#listener = new AdminListener({
      metrics: {
        contentType: registry.contentType,
        render: async () => `${(await sources.workerMetrics()) ?? ''}${await registry.render()}`,
      },
      ready: () =>
        sources.workerRunning()
          ? { ready: true, text: 'ready\n' }
          : { ready: false, text: 'not ready: the serving worker is not running\n' },
    });
  }

  /** Listen, or serve the socket a predecessor handed over. */
  listen(path: string, inheritedFd?: number): Promise<void> {
    return this.#listener.listenUnix(path, 'admin_socket', 0o600, inheritedFd);
  }

  descriptors(): PassedDescriptor[] {
    return this.#listener.descriptors();
  }

  close(options: { keepPaths?: boolean } = {}): Promise<void> {
    return this.#listener.close(options);
  }
}
