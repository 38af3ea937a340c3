/*
 * Who serves a provisioned namespace: the one metadata-proxy-daemon (attach in mode ovn over its control
 * socket: one process for every namespace of the node), or a ns-metadata-proxy process per namespace,
 * supervised like the hooks' (pid file, launch hash, restart on change). Both stamp X-OVN-Network-ID with
 * the network after deleting every identity header the instance sent. Both are idempotent: ensure() on
 * a namespace that is already served as asked changes nothing.
 */
import { join } from 'node:path';
import { activePid, proxyArgv, startProxy, stopProxy } from '@nmp/host';
import { daemonClient } from '@nmp/metadata-proxy-daemon/client';

export interface ServeSpec {
  readonly network: string;
  readonly namespace: string;
  /** As the proxy's --bind takes them. */
  readonly binds: readonly string[];
}

export interface ProxyLauncher {
  readonly kind: 'daemon' | 'process';
  /** Serve the namespace as specified; returns what was done (for the log). */
  ensure(spec: ServeSpec): Promise<string>;
  /** Stop serving it (nothing to do is fine). */
  remove(network: string, namespace: string): Promise<void>;
}

export class DaemonLauncher implements ProxyLauncher {
  readonly kind = 'daemon';

  constructor(
    readonly controlSocket: string,
    readonly timeoutMs = 30_000,
  ) {}

  async ensure(spec: ServeSpec): Promise<string> {
    const status = await daemonClient.attach(
      this.controlSocket,
      { id: spec.network, mode: 'ovn', namespace: spec.namespace, binds: [...spec.binds] },
      this.timeoutMs,
    );
    if (!status.healthy)
      throw new Error(
        `the daemon attached ${spec.namespace} but it is ${status.state}${status.error ? `: ${status.error}` : ''}`,
      );
    return `attached to the daemon (listening ${status.listening.join(' ')})`;
  }

  async remove(_network: string, namespace: string): Promise<void> {
    await daemonClient.detach(this.controlSocket, { namespace }, this.timeoutMs);
  }
}

export interface ProcessLauncherOptions {
  readonly socketPath: string;
  /** Pid files go here: <namespace>.pid.ns-metadata-proxy. */
  readonly pidDir: string;
  /** The proxies' output: <logDir>/<namespace>.log. */
  readonly logDir: string;
  /** A .js file (run with this node and the services' flags) or an executable; default: the proxy beside us. */
  readonly proxyCommand?: string;
  readonly user?: string;
  readonly group?: string;
  readonly configFiles?: readonly string[];
  readonly startTimeoutMs?: number;
  readonly killTimeoutMs?: number;
}

export class ProcessLauncher implements ProxyLauncher {
  readonly kind = 'process';
  readonly #o: ProcessLauncherOptions;

  constructor(options: ProcessLauncherOptions) {
    this.#o = options;
  }

  pidFile(namespace: string): string {
    return join(this.#o.pidDir, `${namespace}.pid.ns-metadata-proxy`);
  }

  argv(spec: ServeSpec): string[] {
    const o = this.#o;
    return proxyArgv({
      command: o.proxyCommand,
      binds: spec.binds,
      identity: { mode: 'ovn', id: spec.network },
      socketPath: o.socketPath,
      pidFile: this.pidFile(spec.namespace),
      user: o.user,
      group: o.group,
      configFiles: o.configFiles,
    });
  }

  async ensure(spec: ServeSpec): Promise<string> {
    const { pid, action } = await startProxy(
      {
        id: spec.network,
        namespace: spec.namespace,
        argv: this.argv(spec),
        pidFile: this.pidFile(spec.namespace),
        // The proxy handles instance traffic: nothing secret of ours goes into its environment.
        logFile: join(this.#o.logDir, `${spec.namespace}.log`),
      },
      {
        ...(this.#o.startTimeoutMs !== undefined ? { startTimeoutMs: this.#o.startTimeoutMs } : {}),
        ...(this.#o.killTimeoutMs !== undefined ? { killTimeoutMs: this.#o.killTimeoutMs } : {}),
      },
    );
    return `proxy ${action} (pid ${pid})`;
  }

  async remove(network: string, namespace: string): Promise<void> {
    await stopProxy(this.pidFile(namespace), network, {
      ...(this.#o.killTimeoutMs !== undefined ? { killTimeoutMs: this.#o.killTimeoutMs } : {}),
    });
  }

  /** The pid of the proxy serving `namespace`, if one runs. */
  running(network: string, namespace: string): number | undefined {
    return activePid(this.pidFile(namespace), network);
  }
}
