/*
 * Listening sockets a process did not open itself, so that a restart loses no connection: the socket
 * stays open in someone else's hands while the process is replaced, and connections wait in its backlog.
 *
 * Two ways in, one protocol (sd_listen_fds(3)):
 * - systemd socket activation: the .socket unit holds the socket; the service gets it at fd 3 (and up)
 *   with LISTEN_FDS = how many, LISTEN_PID = the pid they are meant for, LISTEN_FDNAMES = their
 *   FileDescriptorName= values joined by ':'.
 * - our hand-over (handover.ts): the old process starts its successor with its own listeners at fd 3..
 *   and the same variables, then drains and exits.
 *
 * The variables are removed from the environment once read (sd_listen_fds' unset_environment), whoever
 * they were for, so nothing this process starts mistakes them for its own. LISTEN_PID guards against
 * inheriting them by accident: descriptors meant for another pid are not touched.
 */
import { fstatSync, readFileSync, readlinkSync } from 'node:fs';
import type { Server } from 'node:net';
import { ConfigError } from './config/load.js';

/** sd_listen_fds(3): the first passed descriptor. */
export const SD_LISTEN_FDS_START = 3;

export interface InheritedListener {
  readonly fd: number;
  /** FileDescriptorName= (systemd) or the hand-over's name; 'unknown' when none was given. */
  readonly name: string;
}

const VARIABLES = ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

/**
 * The listening descriptors passed to this process, as sd_listen_fds_with_names() returns them (none when
 * LISTEN_PID names another process). Removes the variables from `env`. Throws a ConfigError when they are
 * malformed or a descriptor is not open: a service started with broken activation must say so, not bind
 * a second socket of its own. (A hand-over may pass other descriptors than sockets, e.g. the proxy's pid
 * file; serving a descriptor that is no listening socket fails in listenOnInherited.)
 */
export function takeInheritedListeners(
  env: NodeJS.ProcessEnv = process.env,
  pid: number = process.pid,
  isOpen: (fd: number) => boolean = fdIsOpen,
): InheritedListener[] {
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  const names = env.LISTEN_FDNAMES;
  for (const v of VARIABLES) delete env[v];
  if (listenPid === undefined || listenFds === undefined) return [];
  if (!/^[1-9]\d*$/.test(listenPid)) throw new ConfigError(`LISTEN_PID=${listenPid}: not a process id`);
  if (Number(listenPid) !== pid) return [];
  if (!/^\d+$/.test(listenFds) || Number(listenFds) > 65_536)
    throw new ConfigError(`LISTEN_FDS=${listenFds}: not a number of descriptors`);
  const n = Number(listenFds);
  const given = names === undefined ? [] : names.split(':');
  // As sd_listen_fds_with_names(): names only when there is one per descriptor.
  const named = given.length === n;
  const out: InheritedListener[] = [];
  for (let i = 0; i < n; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    if (!isOpen(fd)) throw new ConfigError(`LISTEN_FDS=${n}: descriptor ${fd} is not open`);
    out.push({ fd, name: named && given[i] !== '' ? given[i]! : 'unknown' });
  }
  return out;
}

function fdIsOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/**
 * Serve an inherited listening descriptor with `server` (it must be listening already: bound and in
 * listen(2) state, as systemd and our hand-over pass them). Closing the server later never unlinks a
 * UNIX socket's path: node only removes paths it bound itself.
 */
export function listenOnInherited(server: Server, fd: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new ConfigError(`${what}: cannot serve inherited descriptor ${fd}: ${err.code ?? err.message}`));
    server.once('error', onError);
    server.listen({ fd }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** The descriptor a listening node server holds (what a hand-over passes on), or undefined. */
export function listenerFd(server: Server): number | undefined {
  const fd = (server as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Inherited descriptors, taken one by one by name; what nobody takes is an error, not a leak. */
export class InheritedListeners {
  readonly #left: InheritedListener[];

  constructor(list: readonly InheritedListener[]) {
    this.#left = [...list];
  }

  get size(): number {
    return this.#left.length;
  }

  /** The first descriptor named `name`, or undefined. */
  take(name: string): number | undefined {
    const i = this.#left.findIndex((l) => l.name === name);
    if (i < 0) return undefined;
    return this.#left.splice(i, 1)[0]!.fd;
  }

  /** Every descriptor not yet taken (a proxy serves all it was given). */
  takeAll(): InheritedListener[] {
    return this.#left.splice(0);
  }

  /** A ConfigError naming what was passed and not used. */
  checkAllTaken(program: string, accepted: string): void {
    if (this.#left.length === 0) return;
    throw new ConfigError(
      `${program}: passed descriptors it does not use: ${this.#left.map((l) => `${l.fd} (${l.name})`).join(', ')}; it takes ${accepted}`,
    );
  }
}

/**
 * The name a UNIX socket descriptor of this process was bound to (from /proc/net/unix), or undefined.
 * Node cannot tell for a descriptor it did not bind. A socket bound by listenOnSocketPath carries its
 * temporary name (`<path>.~<pid>`, renamed onto the path afterwards); see boundAs().
 */
export function unixSocketName(fd: number): string | undefined {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
    if (!m) return undefined;
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[6] === m[1]) return f[7];
    }
  } catch {
    // no /proc: cannot tell
  }
  return undefined;
}

/** Whether a socket bound under `name` is the one at `path` (bound there, or renamed there from its temporary name). */
export function boundAs(name: string, path: string): boolean {
  return name === path || (name.startsWith(`${path}.~`) && /^\d+$/.test(name.slice(path.length + 2)));
}
