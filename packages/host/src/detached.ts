/*
 * A process that outlives whoever starts it (a proxy started by a hook or by the haproxy drop-in): its own
 * session, output appended to a log file, no secret in its environment. The starter then waits for a sign
 * of readiness of its own choosing (a pid file) and, when the child dies first, shows what it printed.
 */
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { spawnWithoutSecrets } from './spawn.js';

export interface DetachedProcess {
  readonly pid: number | undefined;
  /** How it ended ("exit 3", "SIGKILL", or why it could not start), once it has; else undefined. */
  ended(): string | undefined;
}

/** Start `argv` detached; stdout and stderr go to `logFile` (mode 0640, appended), or nowhere. */
export function startDetached(argv: readonly string[], logFile?: string): DetachedProcess {
  const out = logFile ? openSync(logFile, 'a', 0o640) : 'ignore';
  let child: ReturnType<typeof spawnWithoutSecrets>;
  try {
    child = spawnWithoutSecrets(argv, { detached: true, stdio: ['ignore', out, out] });
  } finally {
    if (typeof out === 'number') closeSync(out);
  }
  let ended: string | undefined;
  child.once('exit', (code, signal) => {
    ended = signal ?? `exit ${code}`;
  });
  child.once('error', (err) => {
    ended = err.message;
  });
  child.unref();
  return { pid: child.pid, ended: () => ended };
}

/** Size of `file`, 0 when it does not exist (where a new run's output will begin). */
export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** What was written to `file` from byte `from` on, at most the last 4000 characters ('' if unreadable). */
export function logTail(file: string | undefined, from: number): string {
  if (!file) return '';
  try {
    const text = readFileSync(file).subarray(from).toString('utf8');
    return text.length > 4000 ? text.slice(-4000) : text;
  } catch {
    return '';
  }
}
