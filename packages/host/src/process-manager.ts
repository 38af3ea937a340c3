/*
 * Proxy lifecycle in the manner of neutron's ProcessManager (reference.md §2.4):
 * - one pid file per network/router: `<external_pids>/<id>.pid.ns-metadata-proxy`, written by the proxy
 *   once it listens;
 * - "running" = the pid in the file exists (not a zombie) and its command line names the id; a pid file
 *   that fails this is stale, ignored and replaced;
 * - start is idempotent; a changed launch (argv, namespace) restarts the proxy: the launch's hash is kept
 *   beside the pid file (`<pidfile>.launch`) and compared;
 * - stop sends SIGTERM, waits up to the kill timeout (5 s), then SIGKILL, and removes the pid file.
 * The proxy is started detached (own session, output appended to a log file, no secret of ours in its
 * environment: detached.ts) so it outlives the hook.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ProgramErrorCode } from '@nmp/common';
import { inNamespace } from './command.js';
import { fileSize, logTail, startDetached } from './detached.js';

export interface ProxyLaunch {
  /** Network or router id; must appear in the proxy's command line. */
  readonly id: string;
  /** Namespace to run in (`ip netns exec`); undefined = the current one. */
  readonly namespace?: string;
  /** Program and arguments (e.g. [node, cli.js, --bind, ...]). */
  readonly argv: readonly string[];
  readonly pidFile: string;
  /** stdout/stderr of the proxy are appended here (default: discarded). */
  readonly logFile?: string;
}

export interface ManagerTimeouts {
  /** How long to wait for the pid file after spawning (default 10 s). */
  readonly startTimeoutMs?: number;
  /** SIGTERM -> SIGKILL delay (default 5 s). */
  readonly killTimeoutMs?: number;
}

export type StartAction = 'started' | 'restarted' | 'unchanged';

export class ProxyStartError extends Error {
  readonly code = 'NMP_ERR_PROXY_START' satisfies ProgramErrorCode;
  constructor(
    message: string,
    readonly logTail: string,
  ) {
    super(logTail ? `${message}\n--- proxy output ---\n${logTail}` : message);
    this.name = 'ProxyStartError';
  }
}

/** State of a process: alive (not a zombie), and its command line. */
export function processInfo(pid: number): { alive: boolean; cmdline: string[] } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return { alive: false, cmdline: [] };
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((s) => s !== '');
    return { alive: true, cmdline };
  } catch {
    return { alive: false, cmdline: [] };
  }
}

/** The pid recorded in `pidFile`, if the file holds one. */
export function readPidFile(pidFile: string): number | undefined {
  try {
    const text = readFileSync(pidFile, 'utf8').trim();
    return /^\d+$/.test(text) && Number(text) > 0 ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/** The running proxy's pid: pid file readable, process alive, its command line names `id`. */
export function activePid(pidFile: string, id: string): number | undefined {
  const pid = readPidFile(pidFile);
  if (pid === undefined) return undefined;
  const info = processInfo(pid);
  return info.alive && info.cmdline.join(' ').includes(id) ? pid : undefined;
}

export function launchHash(l: Pick<ProxyLaunch, 'namespace' | 'argv'>): string {
  return createHash('sha256')
    .update(JSON.stringify({ namespace: l.namespace ?? null, argv: l.argv }))
    .digest('hex');
}

const launchFile = (pidFile: string) => `${pidFile}.launch`;

function readLaunchHash(pidFile: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(launchFile(pidFile), 'utf8')) as { hash?: string }).hash;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Start the proxy unless the same launch is already running; restart it when the launch changed. */
export async function startProxy(
  launch: ProxyLaunch,
  timeouts: ManagerTimeouts = {},
): Promise<{ pid: number; action: StartAction }> {
  const hash = launchHash(launch);
  const running = activePid(launch.pidFile, launch.id);
  let action: StartAction = 'started';
  if (running !== undefined) {
    if (readLaunchHash(launch.pidFile) === hash) return { pid: running, action: 'unchanged' };
    await stopProxy(launch.pidFile, launch.id, timeouts);
    action = 'restarted';
  }
  // Whatever is left is stale (dead pid, or a pid reused by an unrelated process): replace it.
  rmSync(launch.pidFile, { force: true });
  rmSync(launchFile(launch.pidFile), { force: true });
  mkdirSync(dirname(launch.pidFile), { recursive: true, mode: 0o755 });

  if (launch.logFile) mkdirSync(dirname(launch.logFile), { recursive: true, mode: 0o750 });
  const logStart = launch.logFile ? fileSize(launch.logFile) : 0;
  const child = startDetached(inNamespace(launch.namespace, launch.argv), launch.logFile);

  const deadline = Date.now() + (timeouts.startTimeoutMs ?? 10_000);
  for (;;) {
    const pid = activePid(launch.pidFile, launch.id);
    if (pid !== undefined) {
      writeFileSync(
        launchFile(launch.pidFile),
        `${JSON.stringify({ hash, argv: launch.argv, namespace: launch.namespace ?? null })}\n`,
      );
      return { pid, action };
    }
    const exited = child.ended();
    if (exited !== undefined) {
      throw new ProxyStartError(
        `proxy for ${launch.id} exited before it was ready (${exited})`,
        logTail(launch.logFile, logStart),
      );
    }
    if (Date.now() >= deadline) {
      if (child.pid !== undefined) signal(child.pid, 'SIGKILL');
      throw new ProxyStartError(
        `proxy for ${launch.id} did not write ${launch.pidFile} within ${timeouts.startTimeoutMs ?? 10_000} ms`,
        logTail(launch.logFile, logStart),
      );
    }
    await sleep(50);
  }
}

/**
 * Stop the proxy for `id`: SIGTERM, up to `killTimeoutMs` (5 s) for it to exit, then SIGKILL. The pid file
 * and launch record are removed either way. Returns what happened.
 */
export async function stopProxy(
  pidFile: string,
  id: string,
  timeouts: ManagerTimeouts = {},
): Promise<'not-running' | 'terminated' | 'killed'> {
  const pid = activePid(pidFile, id);
  let result: 'not-running' | 'terminated' | 'killed' = 'not-running';
  if (pid !== undefined) {
    signal(pid, 'SIGTERM');
    result = 'terminated';
    const deadline = Date.now() + (timeouts.killTimeoutMs ?? 5_000);
    while (processInfo(pid).alive && Date.now() < deadline) await sleep(50);
    if (processInfo(pid).alive) {
      signal(pid, 'SIGKILL');
      result = 'killed';
      const hard = Date.now() + 5_000;
      while (processInfo(pid).alive && Date.now() < hard) await sleep(50);
    }
  }
  rmSync(pidFile, { force: true });
  rmSync(launchFile(pidFile), { force: true });
  return result;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
