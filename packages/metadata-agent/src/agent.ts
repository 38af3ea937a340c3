/*
 * The metadata agent as a whole: the HTTP server on the UNIX socket, its handler, the Nova pool, the
 * resolver, and an orderly start and stop. The CLI builds one from configuration; tests build one directly.
 */

import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { type InstanceResolver, type Logger, listenOnSocketPath, removeSocketFile } from '@nmp/common';
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
}

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
   * Close every connection that is not carrying a request: idle keep-alive ones, and those that never
   * sent (all of) a request, which Node's closeIdleConnections() skips and which would otherwise hold
   * the stop for the whole deadline.
   */
  #closeQuietConnections(): void {
    for (const socket of this.#sockets) {
      if ((socket as { _httpMessage?: unknown })._httpMessage == null) socket.destroy();
    }
  }

  async listen(): Promise<void> {
    await listenOnSocketPath(this.server, this.#o.socketPath, {
      what: 'metadata_proxy_socket',
      mode: this.#o.socketMode,
      backlog: this.#o.backlog,
      busyHint: ' (is an agent running?)',
    });
    this.#listening = true;
  }

  /** Stop accepting, let in-flight requests finish until the deadline, then cut what is left. */
  async close(deadlineMs = 10_000): Promise<void> {
    if (this.#listening) {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.#closeQuietConnections();
      // A connection whose request ends during the stop becomes quiet too: sweep until all are gone.
      const sweep = setInterval(() => this.#closeQuietConnections(), 50);
      const timer = setTimeout(() => this.server.closeAllConnections(), deadlineMs);
      timer.unref();
      await closed;
      clearInterval(sweep);
      clearTimeout(timer);
      this.#listening = false;
      await removeSocketFile(this.#o.socketPath);
    }
    await Promise.allSettled([this.nova.close(), this.#o.resolver.close()]);
  }
}
