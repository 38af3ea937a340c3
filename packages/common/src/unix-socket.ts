/*
 * Claiming a UNIX socket path, as every listener here does it (the agent's socket, the admin sockets of the
 * agent, the proxy and the daemon, the daemon's control socket): the directory is created; a socket left
 * by a dead process is removed; a socket someone still listens on is refused (two agents must not share
 * one path, the second would silently steal it); and anything that is not a socket is never removed (a
 * typo in a path must not delete a file).
 *
 * The socket is bound under a temporary name beside the path and renamed onto it. Besides making the
 * replacement of a dead socket atomic, this keeps the path when the listener closes: node unlinks the
 * name it bound when its listener closes, and after a hand-over (handover.ts) the path belongs to the
 * successor, which serves the same socket. Whoever closes a listener for good removes the path itself
 * (removeSocketFile).
 */
import { lstatSync } from 'node:fs';
import { chmod, lstat, mkdir, rename, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { dirname } from 'node:path';
import { ConfigError } from './config/load.js';

/** Whether something accepts connections on the UNIX socket `path` (false after `timeoutMs`). */
export function probeSocket(path: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export interface ClaimOptions {
  /** What the path is, for messages: the option that names it (`admin_socket`) or a description. */
  readonly what: string;
  /** Mode of the directory when it has to be created (default 0755). */
  readonly dirMode?: number;
  /** Appended when another process listens there, e.g. ' (is an agent running?)'. */
  readonly busyHint?: string;
}

/** Make `path` free to listen on, or throw a ConfigError saying why it is not (nothing is removed then). */
export async function claimSocketPath(path: string, options: ClaimOptions): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: options.dirMode ?? 0o755 });
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket)
    throw new ConfigError(`${options.what} ${path} exists and is not a socket; refusing to remove it`);
  if (await probeSocket(path))
    throw new ConfigError(
      `${options.what} ${path}: another process is listening there${options.busyHint ?? ''}`,
    );
  await unlink(path);
}

export interface SocketListenOptions extends ClaimOptions {
  /** Mode of the socket file (0600: only the owner may connect). */
  readonly mode: number;
  readonly backlog?: number;
}

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/**
 * Claim `path` and listen there. The file is created while the umask lets nobody but the owner connect,
 * then given `mode`, so there is no moment in which others could connect to an owner-only socket; it
 * appears at `path` only then, renamed from a temporary name (see the top of this file).
 */
export async function listenOnSocketPath(
  server: Server,
  path: string,
  options: SocketListenOptions,
): Promise<void> {
  await claimSocketPath(path, options);
  const temporary = `${path}.~${process.pid}`;
  // Too long for a temporary name: bound where it stays (closing then unlinks it, which only a hand-over minds).
  const bindAt = Buffer.byteLength(temporary) <= MAX_SOCKET_PATH ? temporary : path;
  if (bindAt !== path) await unlink(bindAt).catch(() => {});
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new ConfigError(`${options.what} ${path}: cannot listen: ${err.code ?? err.message}`));
    server.once('error', onError);
    // bind(2) runs inside listen(): the umask only needs to cover this call.
    const umask = process.umask(0o177);
    try {
      server.listen(
        { path: bindAt, ...(options.backlog !== undefined ? { backlog: options.backlog } : {}) },
        () => {
          server.off('error', onError);
          resolve();
        },
      );
    } finally {
      process.umask(umask);
    }
  });
  await chmod(bindAt, options.mode);
  if (bindAt !== path) await rename(bindAt, path);
}

/** After closing: remove the socket file if it is still there and still a socket. */
export async function removeSocketFile(path: string): Promise<void> {
  try {
    if (lstatSync(path).isSocket()) await unlink(path);
  } catch {
    // Gone already, or no longer ours to remove.
  }
}
