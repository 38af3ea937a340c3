/*
 * The serving worker as the supervisor sees it: forked (as the unprivileged proxy user when one is
 * configured), given its settings and the SSRF node key in the init message (never in argv: argv is
 * public, and the worker could not read a root-only key file), asked over IPC (each request answered by
 * its sequence number, with a deadline), and started again with backoff when it exits. Whoever owns the
 * attachments is told when it died and when its replacement is ready, to open them again.
 */
import type { ChildProcess } from 'node:child_process';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type Logger, SERVICE_NODE_FLAGS } from '@nmp/common';
import { forkWithoutSecrets } from '@nmp/host/spawn';
import type { WorkerReply, WorkerRequest, WorkerSettings } from './worker.js';

export const WORKER_PATH = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface WorkerProcessOptions {
  readonly settings: WorkerSettings;
  /** The SSRF node key (token mode only). */
  readonly tokenKey?: Buffer;
  /** Ids the worker runs as (undefined: the supervisor's own). */
  readonly uid?: number;
  readonly gid?: number;
  readonly logger: Logger;
  /** The worker exited unasked: what it served is gone (a new one starts after a backoff). */
  readonly onExit: () => void;
  /** A replacement worker is ready: open again what the old one served. */
  readonly onRestart: () => Promise<unknown>;
}

/** Sequence number of the init message and of the worker's "ready" answer. */
const INIT_SEQ = 0;

export class WorkerProcess {
  readonly #o: WorkerProcessOptions;
  #child: ChildProcess | undefined;
  #ready: Promise<void> | undefined;
  #seq = 0;
  readonly #pending = new Map<number, (reply: WorkerReply, handle?: unknown) => void>();
  /** Restarts since the worker last ran for a minute: the backoff's exponent. */
  #recentRestarts = 0;
  #restarts = 0;
  #stopping = false;

  constructor(options: WorkerProcessOptions) {
    this.#o = options;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child?.connected === true;
  }

  /** Workers started again after one exited, since the supervisor started. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Fork and initialise; resolves when the worker says it is ready. */
  start(): Promise<void> {
    // It serves tenant traffic: no secret of the supervisor's environment goes with it.
    const child = forkWithoutSecrets(WORKER_PATH, [], {
      // The supervisor's node flags, and the services' own whatever started the supervisor.
      execArgv: [...new Set([...process.execArgv, ...SERVICE_NODE_FLAGS])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
      ...(this.#o.uid !== undefined ? { uid: this.#o.uid } : {}),
      ...(this.#o.gid !== undefined ? { gid: this.#o.gid } : {}),
    });
    this.#child = child;
    const startedAt = Date.now();
    this.#ready = new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null, signal: string | null) =>
        reject(new Error(`serving worker exited at start (${signal ?? code})`));
      child.once('exit', onExit);
      this.#pending.set(INIT_SEQ, () => {
        child.off('exit', onExit);
        resolve();
      });
    });
    const init: WorkerRequest = {
      op: 'init',
      seq: INIT_SEQ,
      settings: this.#o.settings,
      ...(this.#o.tokenKey ? { tokenKey: this.#o.tokenKey.toString('hex') } : {}),
    };
    child.send(init);
    child.on('message', (reply: WorkerReply, handle: unknown) => {
      const done = this.#pending.get(reply.seq);
      if (done) {
        this.#pending.delete(reply.seq);
        done(reply, handle);
      }
    });
    child.once('exit', (code, signal) => this.#exited(child, startedAt, code, signal));
    return this.#ready;
  }

  /**
   * Send one request (with a socket handle to hand over, if any) and wait for its answer; a handle the
   * worker sends back (op 'export') comes as `handle` on the answer.
   */
  async request(
    request: WorkerRequest,
    handle?: Server | object,
    timeoutMs = 30_000,
  ): Promise<WorkerReply & { handle?: unknown }> {
    await this.#ready;
    const child = this.#child;
    if (!child?.connected) throw new Error('the serving worker is not running');
    const seq = ++this.#seq;
    return new Promise<WorkerReply & { handle?: unknown }>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`the serving worker did not answer ${request.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(seq, (reply, back) => {
        clearTimeout(timer);
        resolve(back === undefined || back === null ? reply : { ...reply, handle: back });
      });
      child.send({ ...request, seq }, handle as Server | undefined, {}, (err: Error | null) => {
        if (!err) return;
        clearTimeout(timer);
        this.#pending.delete(seq);
        reject(err);
      });
    });
  }

  /** The worker's metrics text, or undefined when it is not running or keeps none. */
  async metrics(): Promise<string | undefined> {
    try {
      const reply = await this.request({ op: 'metrics', seq: 0 }, undefined, 5_000);
      return reply.ok ? reply.metrics : undefined;
    } catch {
      return undefined;
    }
  }

  /** Let the worker finish what is in flight (it leaves when its channel closes); SIGKILL after 12 s. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (child.connected) child.disconnect();
    else child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), 12_000);
    await exited;
    clearTimeout(kill);
  }

  #exited(child: ChildProcess, startedAt: number, code: number | null, signal: string | null): void {
    const failed: WorkerReply = { seq: -1, ok: false, error: 'the serving worker exited' };
    for (const [seq, done] of this.#pending) if (seq !== INIT_SEQ) done({ ...failed, seq });
    this.#pending.clear();
    if (this.#stopping || this.#child !== child) return;
    this.#o.logger.error({ code, signal, pid: child.pid }, 'serving worker exited: starting a new one');
    if (Date.now() - startedAt > 60_000) this.#recentRestarts = 0;
    const delay = Math.min(30_000, 500 * 2 ** this.#recentRestarts++);
    this.#restarts++;
    this.#o.onExit();
    setTimeout(() => {
      if (this.#stopping) return;
      this.start()
        .then(() => this.#o.onRestart())
        .catch((err: unknown) => this.#o.logger.error({ err }, 'serving worker did not start'));
    }, delay).unref();
  }
}
