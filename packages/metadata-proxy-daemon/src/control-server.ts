/*
 * The daemon's control socket: a root-only UNIX socket (0600 in a 0700 directory) on which the hooks and
 * operators attach and detach namespaces. One JSON request per line, answered in order on the same
 * connection (protocol.ts); a bad line gets its error answer and the connection goes on. A line longer
 * than 64 KiB without a newline ends the connection. Claiming the path refuses to start beside a running
 * daemon, and never removes anything that is not a socket.
 */
import { createServer, type Server, type Socket } from 'node:net';
import {
  claimSocketPath,
  type IdentityMode,
  listenerFd,
  listenOnInherited,
  listenOnSocketPath,
  type PassedDescriptor,
  removeSocketFile,
} from '@nmp/common';
import {
  type AttachmentStatus,
  type AttachSpec,
  type ControlResponse,
  type DaemonHealth,
  parseRequest,
} from './protocol.js';

const MAX_LINE = 64 * 1024;

/** The control socket as claimSocketPath names it; its directory is root's alone. */
const CONTROL_SOCKET = {
  what: 'daemon_control_socket',
  dirMode: 0o700,
  busyHint: ' (another metadata-proxy-daemon); refusing to start a second one',
} as const;

/** The control socket's name among passed descriptors. */
export const CONTROL_FD = 'control';

/** What the control socket offers. */
export interface ControlOperations {
  attach(spec: AttachSpec): Promise<AttachmentStatus>;
  detach(target: { namespace?: string; id?: string; mode?: IdentityMode }): Promise<AttachSpec | undefined>;
  list(): Promise<{ daemon: DaemonHealth; attachments: AttachmentStatus[] }>;
}

export class ControlServer {
  readonly path: string;
  readonly #ops: ControlOperations;
  #server: Server | undefined;

  constructor(path: string, ops: ControlOperations) {
    this.path = path;
    this.#ops = ops;
  }

  /** Refuse to start beside a running daemon (or on a path that is not a socket); remove a stale socket. */
  claim(): Promise<void> {
    return claimSocketPath(this.path, CONTROL_SOCKET);
  }

  /** Listen, or serve the socket the daemon this one replaces handed over (`inheritedFd`). */
  async listen(inheritedFd?: number): Promise<void> {
    const server = createServer((socket) => this.#serve(socket));
    if (inheritedFd !== undefined) await listenOnInherited(server, inheritedFd, CONTROL_SOCKET.what);
    else await listenOnSocketPath(server, this.path, { ...CONTROL_SOCKET, mode: 0o600 });
    this.#server = server;
  }

  /** The listening socket, for a hand-over. */
  descriptor(): PassedDescriptor | undefined {
    const fd = this.#server ? listenerFd(this.#server) : undefined;
    return fd === undefined ? undefined : { name: CONTROL_FD, fd };
  }

  /**
   * Stop accepting; resolves once the connections open have had their answers. `keepPath` in a
   * hand-over: the socket (and its file) is the successor's.
   */
  async close(options: { keepPath?: boolean } = {}): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((r) => server.close(() => r()));
    if (!options.keepPath) await removeSocketFile(this.path);
  }

  #serve(socket: Socket): void {
    let buf = '';
    let queue = Promise.resolve();
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE && buf.indexOf('\n') === -1) {
        socket.end(`${JSON.stringify({ ok: false, error: 'request line too long' })}\n`);
        socket.destroy();
        return;
      }
      let nl = buf.indexOf('\n');
      while (nl !== -1) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        if (line === '') continue;
        queue = queue.then(async () => {
          const answer = await this.#answer(line);
          if (socket.writable) socket.write(`${JSON.stringify(answer)}\n`);
        });
      }
    });
  }

  async #answer(line: string): Promise<ControlResponse> {
    try {
      const request = parseRequest(line);
      switch (request.op) {
        case 'attach': {
          const { op: _op, ...spec } = request;
          return { ok: true, attachment: await this.#ops.attach(spec) };
        }
        case 'detach': {
          const detached = await this.#ops.detach(request);
          return detached ? { ok: true, detached } : { ok: true };
        }
        case 'list':
          return { ok: true, ...(await this.#ops.list()) };
      }
    } catch (err) {
      return { ok: false, error: (err as Error).message ?? String(err) };
    }
  }
}
