/*
 * Replacing a running service by a new process without closing its listening sockets (no systemd
 * needed): the old process starts its successor - the same node, flags, program and arguments, so the
 * code on disk now (an upgrade) with the configuration on disk now - and passes it its listeners as
 * systemd would (fd 3.., LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES; listen-fds.ts reads them). The
 * successor serves them, says so over an IPC channel, and only then does the old process stop accepting,
 * finish what it has in flight and exit. Connections that arrive meanwhile wait in the socket's backlog,
 * whichever process accepts them; none is refused.
 *
 * If the successor fails (exits, or stays silent past the timeout), the old process keeps serving: a
 * broken upgrade does not take the service down.
 *
 * LISTEN_PID must be the successor's own pid, which is known only after fork: /bin/sh sets it and exec's
 * node, so the pid does not change. Under systemd (NOTIFY_SOCKET set, NotifyAccess=all) the successor also
 * tells systemd that it is the service's main process now (MAINPID=), so the old one's exit does not
 * count as the service's.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { LogEvent } from './log-events.js';
import type { Logger } from './logger.js';

/** Set in the successor's environment: its parent is a predecessor waiting for "ready". */
const HANDOVER_VARIABLE = 'NMP_HANDOVER';
/** The successor listens for the predecessor's messages (none sent before: they would be lost). */
const HELLO = 'handover-hello';
const READY = 'handover-ready';

export interface PassedDescriptor {
  readonly name: string;
  readonly fd: number;
}

export interface SuccessorOptions {
  /** Listening sockets (and other descriptors) for the successor, in order: fd 3, 4, ... */
  readonly fds: readonly PassedDescriptor[];
  /** How long the successor may take to serve (ms). */
  readonly timeoutMs: number;
  /** Its environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Its command (default: this node with this process's flags, program and arguments). */
  readonly argv?: readonly string[];
}

export interface Successor {
  readonly pid: number;
  /** Resolves when it serves; rejects when it exits first or is silent for the timeout (it is killed then). */
  readonly ready: Promise<void>;
  /** A message (and a listening handle) for it over the hand-over channel. */
  send(message: unknown, handle?: unknown): Promise<void>;
  /** Its messages to us (other than "ready"). */
  onMessage(listener: (message: unknown, handle: unknown) => void): void;
  /** Let it live on alone: close the channel and stop waiting for it, so that this process can exit. */
  release(): void;
}

/** The command that starts this process again: node, its flags, the program and its arguments. */
export function ownCommand(): string[] {
  return [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
}

export function startSuccessor(options: SuccessorOptions): Successor {
  const names = options.fds.map((d) => d.name);
  if (names.some((n) => n.includes(':') || n === ''))
    throw new Error(`descriptor names must be non-empty and free of ':': ${names.join(', ')}`);
  const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env), [HANDOVER_VARIABLE]: '1' };
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (options.fds.length > 0) {
    env.LISTEN_FDS = String(options.fds.length);
    env.LISTEN_FDNAMES = names.join(':');
  }
  const argv = options.argv ?? ownCommand();
  const child: ChildProcess = spawn(
    '/bin/sh',
    ['-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', 'sh', ...argv],
    {
      // stdout and stderr stay where ours go (the journal, the log file); the descriptors follow at 3..
      stdio: ['ignore', 'inherit', 'inherit', ...options.fds.map((d) => d.fd), 'ipc'],
      env,
    },
  );
  const listeners: Array<(message: unknown, handle: unknown) => void> = [];
  let settled = false;
  let greeted: () => void = () => {};
  const hello = new Promise<void>((resolve) => {
    greeted = resolve;
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`the successor did not serve within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    child.once('error', fail);
    child.once('exit', (code, signal) =>
      fail(new Error(`the successor exited before serving (${signal ?? `status ${code}`})`)),
    );
    child.on('message', (message: unknown, handle: unknown) => {
      const op = (message as { op?: unknown } | null)?.op;
      if (op === HELLO) {
        greeted();
        return;
      }
      if (op === READY) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
        return;
      }
      for (const l of listeners) l(message, handle);
    });
  });
  // The caller awaits `ready`; a rejection it has not awaited yet must not crash the process.
  ready.catch(() => {});
  return {
    pid: child.pid ?? -1,
    ready,
    send: async (message, handle) => {
      await Promise.race([hello, ready]);
      if (settled) throw new Error('the successor is gone');
      await new Promise<void>((resolve, reject) => {
        child.send(message as object, handle as never, (err: Error | null) =>
          err ? reject(err) : resolve(),
        );
      });
    },
    onMessage: (l) => listeners.push(l),
    release: () => {
      child.removeAllListeners('exit');
      if (child.connected) child.disconnect();
      child.unref();
    },
  };
}

/** What a successor uses to talk to the process it replaces. */
export interface Predecessor {
  /** Messages the predecessor sends before "ready" (the daemon's attachments). */
  onMessage(listener: (message: unknown, handle: unknown) => void): void;
  send(message: unknown): void;
  /** Tell it we serve (after telling systemd, if there is one): it stops accepting and exits. */
  ready(logger?: Logger): Promise<void>;
}

/**
 * The predecessor waiting for this process to serve, when this process is a hand-over's successor
 * (and forget the marker, so that nothing this process starts believes the same).
 */
export function takePredecessor(env: NodeJS.ProcessEnv = process.env): Predecessor | undefined {
  const marked = env[HANDOVER_VARIABLE] === '1';
  delete env[HANDOVER_VARIABLE];
  if (!marked || typeof process.send !== 'function') return undefined;
  // Kept until someone listens: the predecessor may send before this process has set everything up.
  const early: Array<[unknown, unknown]> = [];
  const listeners: Array<(message: unknown, handle: unknown) => void> = [];
  process.on('message', (message: unknown, handle: unknown) => {
    if (listeners.length === 0) early.push([message, handle]);
    for (const l of listeners) l(message, handle);
  });
  process.send({ op: HELLO, pid: process.pid });
  return {
    onMessage: (l) => {
      listeners.push(l);
      for (const [m, h] of early.splice(0)) l(m, h);
    },
    send: (message) => process.send?.(message as object),
    async ready(logger) {
      await notifySystemd([`MAINPID=${process.pid}`, 'READY=1'], logger);
      await new Promise<void>((resolve) => {
        if (!process.send) return resolve();
        process.send({ op: READY, pid: process.pid }, undefined, {}, () => resolve());
      });
      // The channel must not keep this process alive, nor tie it to the old one.
      process.disconnect?.();
    },
  };
}

/**
 * sd_notify(3) through systemd-notify (node has no datagram UNIX sockets), when systemd asked for it
 * (NOTIFY_SOCKET). Waits until systemd has read the message. A failure is logged, never thrown: the
 * service serves either way.
 */
export function notifySystemd(fields: readonly string[], logger?: Logger): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  return new Promise((resolve) => {
    execFile('systemd-notify', [...fields], { timeout: 10_000 }, (err, _out, stderr) => {
      if (err)
        logger?.warn(
          {
            code: LogEvent.NMP_SYSTEMD_NOTIFY_FAILED,
            fields,
            error: (stderr || err.message).trim().slice(0, 300),
          },
          'could not notify systemd',
        );
      resolve();
    });
  });
}
