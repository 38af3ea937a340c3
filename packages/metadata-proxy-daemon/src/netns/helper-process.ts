/*
 * Running a listener helper, whatever its kind (the Node helper inside a namespace, or the Python batch
 * helper that execs the relay): a short-lived child with an IPC channel over which it sends messages and
 * listening sockets. It starts without our secrets (@nmp/host), is killed when it outlives its deadline, and
 * the first 4 KiB it writes on stderr are kept to explain a failure. Messages and handles go to `onMessage`
 * until it ends; a handle that arrives after that (it was killed meanwhile) is closed here, so none leaks.
 * What the messages mean is the caller's.
 */
import type { Server } from 'node:net';
import { spawnWithoutSecrets } from '@nmp/host/spawn';
import type { HelperMessage } from './hand-over.js';

export interface HelperRun {
  /** Kill it (SIGKILL) when it has not ended by then. */
  readonly timeoutMs: number;
  /** Each message, with the server handle sent along, if any. */
  readonly onMessage: (message: HelperMessage, handle: Server | undefined) => void;
}

export interface HelperEnd {
  /** closed: it exited (after its last message and its stderr); timeout: killed at the deadline; error: not started. */
  readonly how: 'closed' | 'timeout' | 'error';
  /** Its stderr, at most about 4 KiB of it. */
  readonly stderr: string;
  /** The start of its stderr, trimmed, for an error message ('' when it said nothing). */
  readonly said: string;
  /** Why it could not be started (how = error). */
  readonly error?: Error;
}

export function runHelperProcess(argv: readonly string[], o: HelperRun): Promise<HelperEnd> {
  return new Promise((resolve) => {
    let stderr = '';
    let settled = false;
    const child = spawnWithoutSecrets(argv, {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    const finish = (how: HelperEnd['how'], error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const said = stderr.trim().slice(0, 500);
      resolve({ how, stderr, said, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish('timeout');
    }, o.timeoutMs);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => {
      if (stderr.length < 4096) stderr += c;
    });
    child.on('message', (m: HelperMessage, handle: unknown) => {
      const server = handle ? (handle as Server) : undefined;
      if (settled) server?.close();
      else o.onMessage(m, server);
    });
    child.once('error', (err) => finish('error', err));
    // 'close' comes after the last message and the stderr end.
    child.once('close', () => finish('closed'));
  });
}
