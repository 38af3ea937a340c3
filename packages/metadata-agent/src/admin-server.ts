/*
 * The admin listener: /metrics (Prometheus text format), /healthz (the process serves) and /readyz (Nova
 * and the resolver answered recently). It is never where an instance can reach it: the agent runs in the
 * root namespace, and the listener is a UNIX socket (mode 0600, owner only; not addressable over any
 * network) and/or a loopback TCP port (127.0.0.0/8 or ::1 of the root namespace, which no tenant
 * namespace shares). Any other bind address is refused at start.
 */
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import {
  ADMIN_TCP,
  ADMIN_UNIX,
  AdminListener,
  ConfigError,
  type InheritedListeners,
  type Logger,
  type PassedDescriptor,
} from '@nmp/common';
import type ipaddrModule from 'ipaddr.js';
import type { ReadinessReport } from './readiness.js';

// A CommonJS package loaded with require, not import: an ES module importing CommonJS makes node compile
// its CommonJS export scanner (WebAssembly) once per process: 4 MB resident in isolation, 1-2 MB in the proxy.
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof ipaddrModule;

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

/** The agent's admin listener: the routes of @nmp/common's AdminListener, readiness from Nova and the resolver. */
export class AdminServer {
  readonly #o: AdminServerOptions;
  readonly #bind: AdminBind | undefined;
  readonly #listener: AdminListener;

  constructor(options: AdminServerOptions) {
    this.#o = options;
    if (options.bind !== '') {
      const bind = parseAdminBind(options.bind);
      if (typeof bind === 'string') throw new ConfigError(`admin_bind = '${options.bind}': ${bind}`);
      this.#bind = bind;
    }
    this.#listener = new AdminListener({
      metrics: options.metrics,
      ready: async () => {
        const r = await options.readiness.check();
        return { ready: r.ready, text: readinessText(r) };
      },
      onError: (err, path) => options.logger.error({ err, path }, 'admin request failed'),
    });
  }

  /** Where it listens, for the start-up log line: socket paths and host:port. */
  get addresses(): string[] {
    return this.#listener.addresses;
  }

  /**
   * Listen, or serve what a predecessor handed over (its ADMIN_UNIX / ADMIN_TCP descriptors, see
   * handover.ts); a handed-over descriptor this configuration does not use is closed.
   */
  async listen(inherited?: InheritedListeners): Promise<void> {
    const unixFd = inherited?.take(ADMIN_UNIX);
    const tcpFd = inherited?.take(ADMIN_TCP);
    // The socket is created owner-only and stays so (0600).
    if (this.#o.socketPath !== '')
      await this.#listener.listenUnix(this.#o.socketPath, 'admin_socket', 0o600, unixFd);
    else if (unixFd !== undefined) closeSync(unixFd);
    if (this.#bind !== undefined)
      await this.#listener.listenTcp(this.#bind.host, this.#bind.port, `admin_bind ${this.#o.bind}`, tcpFd);
    else if (tcpFd !== undefined) closeSync(tcpFd);
  }

  /** Its listening descriptors, for a hand-over. */
  descriptors(): PassedDescriptor[] {
    return this.#listener.descriptors();
  }

  close(options: { keepPaths?: boolean } = {}): Promise<void> {
    return this.#listener.close(options);
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
