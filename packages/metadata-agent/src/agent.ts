/*
 * The metadata agent as a whole: the HTTP server on the UNIX socket, its handler, the Nova pool, the
 * resolver, and an orderly start and stop. The CLI builds one from configuration; tests build one directly.
 *
 * The socket is the agent's own (bound at start) or inherited: from systemd's nmp-metadata-agent.socket,
 * or from the agent this one replaces (handover.ts). An inherited socket outlives the process: a restart
 * loses no connection, they wait in its backlog. The stop is built for that: it never closes a
 * connection on which a request may be on its way (one that has not been answered yet), answers what is
 * in flight with `Connection: close`, and only closes connections that are idle after an answer (the
 * proxy sends again on a fresh one, see ns-metadata-proxy's agent-retry.ts).
 */

import { chmod } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  boundAs,
  ConfigError,
  type InstanceResolver,
  type Logger,
  listenerFd,
  listenOnInherited,
  listenOnSocketPath,
  type PassedDescriptor,
  removeSocketFile,
  unixSocketName,
} from '@nmp/common';
import { AgentHandler } from './handler.js';
import type { AgentMetrics } from './metrics.js';
import { NovaClient, type NovaClientOptions } from './nova-client.js';
import type { Readiness } from './readiness.js';
import { InstanceSigner } from './signer.js';
import { UpstreamTelemetry } from './upstream-observer.js';

export interface MetadataAgentOptions {
  readonly socketPath: string;
  /** File mode of the socket (0644/0664/0666). */
  readonly socketMode: number;
  readonly backlog: number;
  readonly nova: NovaClientOptions;
  readonly sharedSecret: string;
  readonly resolver: InstanceResolver;
  readonly logger: Logger;
  readonly maxBodySize: number;
  /** Request and Nova metrics (the resolver's are wired where the resolver is built). */
  readonly metrics?: AgentMetrics;
  /** Told when Nova and the resolver answer. */
  readonly readiness?: Readiness;
  /** A listening socket to serve instead of binding one (systemd's, or a predecessor's). */
  readonly inheritedFd?: number;
  /** Where it comes from: systemd keeps its socket file; a predecessor's is ours to remove at the end. */
  readonly inheritedFrom?: 'systemd' | 'predecessor';
}

/**
 * How long a stop waits for a connection that has not been answered yet to send its request (ms): a
 * request on its way arrives well within it; a silent connection is cut after it.
 */
export const UNANSWERED_GRACE_MS = 500;

/** The name of the agent's socket among passed descriptors (FileDescriptorName= of the .socket unit). */
export const METADATA_SOCKET_NAME = 'metadata';

export class MetadataAgent {
  readonly server: Server;
  readonly handler: AgentHandler;
  readonly signer: InstanceSigner;
  readonly nova: NovaClient;
  readonly #o: MetadataAgentOptions;
  #listening = false;
  /** Open connections on the socket (the proxies' pooled connections), for the count and the stop. */
  readonly #sockets = new Set<Socket>();

  constructor(options: MetadataAgentOptions) {
    this.#o = options;
    this.signer = new InstanceSigner(options.sharedSecret);
    const observer =
      options.nova.observer ??
      (options.metrics || options.readiness
        ? new UpstreamTelemetry(options.metrics, options.readiness)
        : undefined);
    this.nova = new NovaClient(observer ? { ...options.nova, observer } : options.nova);
    this.handler = new AgentHandler({
      resolver: options.resolver,
      nova: this.nova,
      signer: this.signer,
      logger: options.logger,
      maxBodySize: options.maxBodySize,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.readiness ? { readiness: options.readiness } : {}),
    });
    // Only the trusted proxies connect here; their pooled connections stay open for a long time.
    this.server = createServer(
      { keepAlive: true, requestTimeout: 120_000, headersTimeout: 60_000 },
      this.handler.handle,
    );
    this.server.keepAliveTimeout = 65_000;
    this.server.maxHeadersCount = 200;
    this.server.on('connection', this.#connected);
  }

  get socketPath(): string {
    return this.#o.socketPath;
  }

  /** Connections open on the socket now (the proxies' pooled connections). */
  get connections(): number {
    return this.#sockets.size;
  }

  readonly #connected = (socket: Socket): void => {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  };

  /**
   * Close every connection that is idle after an answer. One that has not been answered yet gets
   * UNANSWERED_GRACE_MS first: its request may be in the socket's buffer already, and closing it would
   * fail a request the proxy cannot safely send again (a POST); it is answered, with `Connection: close`.
   */
  #closeQuietConnections(since: number): void {
    for (const socket of this.#sockets) {
      const res = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
      if (res == null) {
        if (socket.bytesWritten > 0 || Date.now() - since >= UNANSWERED_GRACE_MS) socket.destroy();
      } else if (!res.headersSent) res.shouldKeepAlive = false;
    }
  }

  async listen(): Promise<void> {
    const fd = this.#o.inheritedFd;
    if (fd === undefined) {
      await listenOnSocketPath(this.server, this.#o.socketPath, {
        what: 'metadata_proxy_socket',
        mode: this.#o.socketMode,
        backlog: this.#o.backlog,
        busyHint: ' (is an agent running?)',
      });
    } else {
      // Node cannot tell a passed socket's path; /proc can. Serving another path would leave the
      // configured one unserved without a word.
      const name = unixSocketName(fd);
      if (name !== undefined && !boundAs(name, this.#o.socketPath))
        throw new ConfigError(
          `metadata_proxy_socket = ${this.#o.socketPath}, but the socket passed on descriptor ${fd} is ${name} (ListenStream= of the .socket unit must be the same path)`,
        );
      await listenOnInherited(this.server, fd, 'metadata_proxy_socket');
      // The mode neutron's rule deduces, whatever the .socket unit's SocketMode= says (the file is ours).
      await chmod(this.#o.socketPath, this.#o.socketMode).catch(() => {});
    }
    this.#listening = true;
  }

  /** The listening socket, named, for a hand-over to a successor. */
  descriptors(): PassedDescriptor[] {
    const fd = listenerFd(this.server);
    return fd === undefined ? [] : [{ name: METADATA_SOCKET_NAME, fd }];
  }

  /**
   * Stop accepting, let in-flight requests finish until the deadline, then cut what is left. The socket
   * file is removed unless it is not ours to remove: systemd's (its .socket unit keeps it), or
   * `keepSocket` after a hand-over (the successor serves it).
   */
  async close(deadlineMs = 10_000, options: { keepSocket?: boolean } = {}): Promise<void> {
    if (this.#listening) {
      this.handler.draining = true;
      const since = Date.now();
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.#closeQuietConnections(since);
      // A connection whose request ends during the stop becomes quiet too: sweep until all are gone.
      const sweep = setInterval(() => this.#closeQuietConnections(since), 50);
      const timer = setTimeout(() => this.server.closeAllConnections(), deadlineMs);
      timer.unref();
      await closed;
      clearInterval(sweep);
      clearTimeout(timer);
      this.#listening = false;
      if (!options.keepSocket && this.#o.inheritedFrom !== 'systemd')
        await removeSocketFile(this.#o.socketPath);
    }
    await Promise.allSettled([this.nova.close(), this.#o.resolver.close()]);
  }
}
