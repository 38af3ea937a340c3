/*
 * The admin listener: /metrics (Prometheus text format), /healthz (the process serves) and /readyz (Nova
 * and the resolver answered recently). It is never where an instance can reach it: the agent runs in the
 * root namespace, and the listener is a UNIX socket (mode 0600, owner only; not addressable over any
 * network) and/or a loopback TCP port (127.0.0.0/8 or ::1 of the root namespace, which no tenant
 * namespace shares). Any other bind address is refused at start.
 */
import { chmod, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { type AddressInfo, isIP } from 'node:net';
import { ConfigError, formatAddress, type Logger } from '@nmp/common';
import type ipaddrModule from 'ipaddr.js';

// A CommonJS package loaded with require, not import: an ES module importing CommonJS makes node compile
// its CommonJS export scanner (WebAssembly) once per process: 4 MB resident in isolation, 1-2 MB in the proxy.
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof ipaddrModule;

import type { ReadinessReport } from './readiness.js';
import { prepareSocketPath } from './unix-socket.js';

export interface AdminBind {
  readonly host: string;
  readonly port: number;
}

/**
 * Parse `admin_bind`: `127.0.0.1:9180`, `[::1]:9180` or `localhost:9180` (= 127.0.0.1). Returns a reason
 * instead of an address when it is not a loopback address with a port.
 */
export function parseAdminBind(text: string): AdminBind | string {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return 'expected ADDRESS:PORT, e.g. 127.0.0.1:9180 or [::1]:9180';
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535) return 'port must be at most 65535';
  if (host.toLowerCase() === 'localhost') return { host: '127.0.0.1', port };
  if (!isLoopback(host))
    return 'the admin listener must be a loopback address (127.0.0.0/8 or ::1): anything else could be reachable from other hosts or namespaces';
  return { host, port };
}

/** 127.0.0.0/8, ::1, and IPv4-mapped 127.x. */
export function isLoopback(host: string): boolean {
  // Only the literal forms the kernel is given as they are (no "127.1" or 2130706433 shorthands).
  if (isIP(host) === 0) return false;
  return ipaddr.process(host).range() === 'loopback';
}

export interface AdminServerOptions {
  /** UNIX socket path ('' = none). */
  readonly socketPath: string;
  /** Loopback address ('' = none). */
  readonly bind: string;
  readonly logger: Logger;
  readonly metrics: { render(): Promise<string>; readonly contentType: string };
  readonly readiness: { check(): Promise<ReadinessReport> };
}

const TEXT = 'text/plain; charset=utf-8';

export class AdminServer {
  readonly #o: AdminServerOptions;
  readonly #servers: Server[] = [];
  readonly #bind: AdminBind | undefined;
  /** Where it listens, for the start-up log line: socket paths and host:port. */
  readonly addresses: string[] = [];

  constructor(options: AdminServerOptions) {
    this.#o = options;
    if (options.bind !== '') {
      const bind = parseAdminBind(options.bind);
      if (typeof bind === 'string') throw new ConfigError(`admin_bind = '${options.bind}': ${bind}`);
      this.#bind = bind;
    }
  }

  async listen(): Promise<void> {
    if (this.#o.socketPath !== '') {
      await prepareSocketPath(this.#o.socketPath, 'admin_socket');
      const server = this.#server();
      await listenOn(server, { path: this.#o.socketPath }, `admin_socket ${this.#o.socketPath}`);
      // The socket is created with the umask's mode (no write bit for others: nobody else can connect
      // even before this); then owner only.
      await chmod(this.#o.socketPath, 0o600);
      this.addresses.push(this.#o.socketPath);
    }
    if (this.#bind !== undefined) {
      const server = this.#server();
      await listenOn(server, { host: this.#bind.host, port: this.#bind.port }, `admin_bind ${this.#o.bind}`);
      const a = server.address() as AddressInfo;
      this.addresses.push(formatAddress(a));
    }
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (!s.listening) return resolve();
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    if (this.#o.socketPath !== '') await unlink(this.#o.socketPath).catch(() => {});
  }

  #server(): Server {
    const server = createServer({ requestTimeout: 10_000, headersTimeout: 10_000 }, this.#handle);
    server.keepAliveTimeout = 5_000;
    this.#servers.push(server);
    return server;
  }

  readonly #handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.#route(req, res).catch((err: unknown) => {
      this.#o.logger.error({ err, path: req.url }, 'admin request failed');
      if (!res.headersSent) send(res, 500, TEXT, 'internal error\n');
      else res.destroy();
    });
  };

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, TEXT, 'only GET and HEAD\n');
      return;
    }
    switch (path) {
      case '/metrics':
        send(res, 200, this.#o.metrics.contentType, await this.#o.metrics.render());
        return;
      case '/healthz':
        send(res, 200, TEXT, 'ok\n');
        return;
      case '/readyz': {
        const r = await this.#o.readiness.check();
        send(res, r.ready ? 200 : 503, TEXT, readinessText(r));
        return;
      }
      default:
        send(res, 404, TEXT, 'not found: try /metrics, /healthz or /readyz\n');
    }
  }
}

/** `ready` or `not ready`, then one line per upstream. */
export function readinessText(r: ReadinessReport): string {
  const line = (name: string, c: ReadinessReport['nova']) =>
    c.ok
      ? `${name}: ok (answered ${new Date(c.lastAnswer).toISOString()})`
      : `${name}: not ready: ${c.reason ?? 'no recent answer'}`;
  const head = r.ready ? 'ready' : r.stopping ? 'not ready: stopping' : 'not ready';
  return `${head}\n${line('nova', r.nova)}\n${line('resolver', r.resolver)}\n`;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function listenOn(
  server: Server,
  where: { path: string } | { host: string; port: number },
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new ConfigError(`${what}: cannot listen: ${err.code ?? err.message}`));
    server.once('error', onError);
    server.listen(where, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
