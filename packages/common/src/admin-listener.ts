/*
 * The admin listener every service here has: /metrics (Prometheus text format), /healthz (the process
 * serves) and /readyz (what "ready" means is the service's), GET or HEAD only, on a UNIX socket (mode 0600,
 * owner only: not addressable over any network) and, for the agent, a loopback TCP port. What differs per
 * service is the metrics, the readiness and where it listens; the routes, the answers and the socket
 * handling are the same, so they are here.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from './config/load.js';
import type { PassedDescriptor } from './handover.js';
import { formatAddress } from './host-port.js';
import { boundAs, listenerFd, listenOnInherited, unixSocketName } from './listen-fds.js';
import { listenOnSocketPath, removeSocketFile } from './unix-socket.js';

/** The names its descriptors carry in a hand-over. */
export const ADMIN_UNIX = 'admin-unix';
export const ADMIN_TCP = 'admin-tcp';

export interface AdminRoutes {
  readonly metrics: { render(): Promise<string>; readonly contentType: string };
  /** /readyz: 200 with `text` when ready, else 503 with it. */
  readonly ready: () => ReadyAnswer | Promise<ReadyAnswer>;
  /** Told when a route failed (the answer was 500). */
  readonly onError?: (err: unknown, path: string) => void;
}

export interface ReadyAnswer {
  readonly ready: boolean;
  /** The body, newline-terminated: `ready\n`, or `not ready: <why>\n` and details. */
  readonly text: string;
}

const TEXT = 'text/plain; charset=utf-8';

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

async function route(routes: AdminRoutes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    send(res, 405, TEXT, 'only GET and HEAD\n');
    return;
  }
  switch (path) {
    case '/metrics':
      send(res, 200, routes.metrics.contentType, await routes.metrics.render());
      return;
    case '/healthz':
      send(res, 200, TEXT, 'ok\n');
      return;
    case '/readyz': {
      const r = await routes.ready();
      send(res, r.ready ? 200 : 503, TEXT, r.text);
      return;
    }
    default:
      send(res, 404, TEXT, 'not found: try /metrics, /healthz or /readyz\n');
  }
}

/**
 * Serve the handed-over descriptor when it is the address configured now; else close it (the
 * configuration changed across the hand-over) and let the caller bind afresh. Whether it was adopted.
 */
async function adoptIf(
  server: Server,
  fd: number | undefined,
  what: string,
  matches: (address: string | AddressInfo | null) => boolean,
): Promise<boolean> {
  if (fd === undefined) return false;
  await listenOnInherited(server, fd, what);
  if (matches(server.address())) return true;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return false;
}

/** The routes as a request listener; a failing route answers 500 (or cuts an answer already started). */
export function adminRequestListener(
  routes: AdminRoutes,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    route(routes, req, res).catch((err: unknown) => {
      routes.onError?.(err, req.url ?? '');
      if (!res.headersSent) send(res, 500, TEXT, 'internal error\n');
      else res.destroy();
    });
  };
}

/** One or more listeners serving the admin routes. */
export class AdminListener {
  readonly #routes: AdminRoutes;
  readonly #servers: Server[] = [];
  readonly #paths: string[] = [];
  /** Descriptor names of the servers, for a hand-over. */
  readonly #named = new Map<Server, string>();
  /** Where it listens: socket paths and host:port, for the start-up log line. */
  readonly addresses: string[] = [];

  constructor(routes: AdminRoutes) {
    this.#routes = routes;
  }

  /**
   * Listen on a UNIX socket (claimed as claimSocketPath does; default mode 0600), or serve the one a
   * predecessor handed over (`inheritedFd`, see handover.ts).
   */
  async listenUnix(path: string, what: string, mode = 0o600, inheritedFd?: number): Promise<void> {
    const server = this.#server(ADMIN_UNIX);
    const bound = inheritedFd === undefined ? undefined : unixSocketName(inheritedFd);
    if (!(await adoptIf(server, inheritedFd, what, () => bound !== undefined && boundAs(bound, path))))
      await listenOnSocketPath(server, path, { what, mode });
    this.#paths.push(path);
    this.addresses.push(path);
  }

  /** Listen on a TCP address (the caller has checked it is loopback), or serve a handed-over one. */
  async listenTcp(host: string, port: number, what: string, inheritedFd?: number): Promise<void> {
    const server = this.#server(ADMIN_TCP);
    const same = (a: string | AddressInfo | null) =>
      typeof a === 'object' && a !== null && a.port === port && a.address === host;
    if (!(await adoptIf(server, inheritedFd, what, same)))
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException) =>
          reject(new ConfigError(`${what}: cannot listen: ${err.code ?? err.message}`));
        server.once('error', onError);
        server.listen({ host, port }, () => {
          server.off('error', onError);
          resolve();
        });
      });
    this.addresses.push(formatAddress(server.address() as AddressInfo));
  }

  /** The listening descriptors, named (admin-unix, admin-tcp), for a hand-over to a successor. */
  descriptors(): PassedDescriptor[] {
    const out: PassedDescriptor[] = [];
    for (const s of this.#servers) {
      const fd = listenerFd(s);
      const name = this.#named.get(s);
      if (fd !== undefined && name !== undefined) out.push({ name, fd });
    }
    return out;
  }

  /** Stop serving; `keepPaths` after a hand-over: the socket files are the successor's. */
  async close(options: { keepPaths?: boolean } = {}): Promise<void> {
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
    if (!options.keepPaths) await Promise.all(this.#paths.map(removeSocketFile));
  }

  #server(name: string): Server {
    const server = createServer(
      { requestTimeout: 10_000, headersTimeout: 10_000 },
      adminRequestListener(this.#routes),
    );
    server.keepAliveTimeout = 5_000;
    this.#servers.push(server);
    this.#named.set(server, name);
    return server;
  }
}
