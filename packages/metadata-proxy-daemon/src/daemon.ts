/*
 * The supervisor: the daemon's root half. It owns the control socket, the attachments and their file,
 * the listener helpers, and the serving worker it forks (unprivileged when a user is configured). It
 * accepts no instance traffic itself: each socket a helper hands over is passed straight on to the worker
 * and closed here.
 *
 *   attach:  helper in the namespace -> sockets -> worker serves them with the attachment's identity
 *            -> attachments file saved -> answer.
 *   detach:  worker closes that namespace's listeners (in-flight requests finish) -> file saved.
 *   restart: the file is read and every attachment opened again (namespaces gone are reported and kept
 *            as namespace-missing: attached again if the namespace comes back, until detached).
 *   vanish:  /run/netns is watched (and checked every namespace_check_interval): a namespace that is gone
 *            or was replaced by a new one of the same name loses its listeners at once. A listening
 *            socket keeps its namespace alive, so without this a deleted namespace would live on, served.
 *   worker crash: a new worker is forked (with backoff) and every attachment opened again.
 *
 * Operations on one namespace are serialised; helpers run at most attach_concurrency at a time.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, type FSWatcher, watch } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  type BindAddress,
  claimSocketPath,
  type Logger,
  listenOnSocketPath,
  parseBind,
  probeSocket,
  removeSocketFile,
  SERVICE_NODE_FLAGS,
  withoutSecrets,
} from '@nmp/common';
import { BatchOpener, runBatchHelper } from './batch-helper.js';
import { DaemonAdmin } from './daemon-admin.js';
import {
  HelperError,
  type HelperResult,
  NETNS_DIR,
  type NetnsExec,
  type NetnsId,
  namespaceId,
  runListenerHelper,
} from './listener-helper.js';
import {
  type AttachMode,
  type AttachmentState,
  type AttachmentStatus,
  type AttachSpec,
  type ControlResponse,
  type DaemonHealth,
  ProtocolError,
  parseRequest,
} from './protocol.js';
import { loadState, StateFile } from './state-file.js';
import type { WorkerReply, WorkerRequest, WorkerSettings, WorkerStats } from './worker.js';

export const WORKER_PATH = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface DaemonSettings {
  readonly controlSocket: string;
  readonly stateFile: string;
  readonly worker: WorkerSettings;
  /** The SSRF node key (loaded by the supervisor, as root), handed to the worker at its start. */
  readonly tokenKey?: Buffer;
  /** The admin socket (/metrics of the worker and the supervisor, /healthz, /readyz); '' or absent: none. */
  readonly adminSocket?: string;
  /** Ids the worker runs as (undefined: the daemon's own). */
  readonly workerUid?: number;
  readonly workerGid?: number;
  readonly netnsExec: NetnsExec;
  /** python3 for netns_exec = python (default /usr/bin/python3). */
  readonly pythonCommand?: string;
  readonly attachConcurrency: number;
  readonly helperTimeoutMs: number;
  readonly namespaceCheckIntervalMs: number;
  readonly logger: Logger;
}

interface Attachment {
  spec: AttachSpec;
  readonly binds: readonly BindAddress[];
  state: AttachmentState;
  listening: string[];
  netns: NetnsId | undefined;
  error: string | undefined;
  since: string;
  /** Not before this time (ms) is a missing or failed attachment tried again. */
  retryAt: number;
}

const MAX_LINE = 64 * 1024;

/** The control socket as claimSocketPath names it; its directory is root's alone. */
const CONTROL_SOCKET = {
  what: 'daemon_control_socket',
  dirMode: 0o700,
  busyHint: ' (another metadata-proxy-daemon); refusing to start a second one',
} as const;

/** At most `n` tasks at once. */
class Semaphore {
  #free: number;
  readonly #queue: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#queue.push(r));
    try {
      return await task();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

function sameSpec(a: AttachSpec, b: AttachSpec): boolean {
  return (
    a.id === b.id &&
    a.mode === b.mode &&
    a.namespace === b.namespace &&
    a.binds.length === b.binds.length &&
    a.binds.every((x, i) => x === b.binds[i])
  );
}

export class MetadataProxyDaemon {
  readonly #s: DaemonSettings;
  readonly #log: Logger;
  readonly #attachments = new Map<string, Attachment>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #helpers: Semaphore;
  readonly #state: StateFile;
  readonly #batch: BatchOpener | undefined;
  #control: Server | undefined;
  #worker: ChildProcess | undefined;
  #workerReady: Promise<void> | undefined;
  #seq = 0;
  readonly #pending = new Map<number, (reply: WorkerReply) => void>();
  #workerRestarts = 0;
  /** Workers started after one exited, in all (for the metrics; #workerRestarts is the backoff's). */
  #workerRestartsTotal = 0;
  #admin: DaemonAdmin | undefined;
  #watcher: FSWatcher | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #watchDebounce: NodeJS.Timeout | undefined;
  #checking = false;
  #stopping = false;
  /** Resolves when the attachments of the file have all been tried once. */
  restored: Promise<{ restored: number; missing: number; failed: number }> = Promise.resolve({
    restored: 0,
    missing: 0,
    failed: 0,
  });

  constructor(settings: DaemonSettings) {
    this.#s = settings;
    this.#log = settings.logger;
    this.#helpers = new Semaphore(settings.attachConcurrency);
    if (settings.netnsExec === 'python')
      // Two batches at once keep two cores busy; more would only make each batch smaller.
      this.#batch = new BatchOpener(
        (items) =>
          runBatchHelper(items, {
            backlog: settings.worker.limits.backlog,
            timeoutMs: settings.helperTimeoutMs,
            python: settings.pythonCommand ?? '/usr/bin/python3',
          }),
        Math.min(2, settings.attachConcurrency),
      );
    this.#state = new StateFile(settings.stateFile, () => [...this.#attachments.values()].map((a) => a.spec));
  }

  get workerPid(): number | undefined {
    return this.#worker?.pid;
  }

  /** Fork the worker, open the control socket, then restore the file's attachments (see `restored`). */
  async start(): Promise<void> {
    await this.#claimControlSocket();
    const loaded = loadState(this.#s.stateFile);
    for (const r of loaded.rejected) this.#log.warn({ entry: r }, 'attachments file: entry ignored');
    for (const spec of loaded.attachments) this.#attachments.set(spec.namespace, this.#newAttachment(spec));
    await this.#startWorker();
    await this.#listenControl();
    if (this.#s.adminSocket) {
      this.#admin = new DaemonAdmin({
        workerMetrics: () => this.#workerMetrics(),
        workerRunning: () => this.#worker?.connected === true,
        workerRestarts: () => this.#workerRestartsTotal,
        attachmentStates: () => [...this.#attachments.values()].map((a) => a.state),
      });
      await this.#admin.listen(this.#s.adminSocket);
    }
    this.#watchNamespaces();
    this.#checkTimer = setInterval(() => void this.#checkNamespaces(), this.#s.namespaceCheckIntervalMs);
    this.#checkTimer.unref();
    this.restored = this.#restoreAll(loaded.attachments.map((s) => s.namespace));
    void this.restored.then((r) =>
      this.#log.info({ ...r, total: loaded.attachments.length }, 'attachments restored'),
    );
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#checkTimer);
    clearTimeout(this.#watchDebounce);
    this.#watcher?.close();
    if (this.#control) {
      await new Promise<void>((r) => this.#control!.close(() => r()));
      await removeSocketFile(this.#s.controlSocket);
    }
    await this.#admin?.close();
    const worker = this.#worker;
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const exited = new Promise<void>((r) => worker.once('exit', () => r()));
      if (worker.connected) worker.disconnect();
      else worker.kill('SIGTERM');
      const kill = setTimeout(() => worker.kill('SIGKILL'), 12_000);
      await exited;
      clearTimeout(kill);
    }
  }

  // ---- operations (what the control socket offers) ----

  async attach(spec: AttachSpec): Promise<AttachmentStatus> {
    const binds = spec.binds.map((b) => parseBind(b));
    return this.#locked(spec.namespace, async () => {
      const current = this.#attachments.get(spec.namespace);
      if (current && sameSpec(current.spec, spec) && current.state === 'listening') {
        const now = namespaceId(spec.namespace);
        if (now && current.netns && now.ino === current.netns.ino)
          return (await this.#statuses([current]))[0]!;
      }
      if (current) await this.#closeListeners(current);
      const a = this.#newAttachment(spec, binds);
      this.#attachments.set(spec.namespace, a);
      try {
        await this.#open(a);
      } catch (err) {
        // A refused attach is not kept: the caller decides what to do.
        this.#attachments.delete(spec.namespace);
        await this.#state.save();
        throw err;
      }
      await this.#state.save();
      this.#log.info({ namespace: spec.namespace, [spec.mode]: spec.id, listen: a.listening }, 'attached');
      return (await this.#statuses([a]))[0]!;
    });
  }

  /** Detach by namespace, or by id (and mode); undefined when nothing was attached. */
  async detach(target: {
    namespace?: string;
    id?: string;
    mode?: AttachMode;
  }): Promise<AttachSpec | undefined> {
    let namespace = target.namespace;
    if (namespace === undefined) {
      const matches = [...this.#attachments.values()].filter(
        (a) => a.spec.id === target.id && (target.mode === undefined || a.spec.mode === target.mode),
      );
      if (matches.length > 1)
        throw new ProtocolError(
          `${matches.length} attachments stamp ${target.id} (${matches.map((m) => m.spec.namespace).join(', ')}): detach by namespace`,
        );
      namespace = matches[0]?.spec.namespace;
      if (namespace === undefined) return undefined;
    }
    const ns = namespace;
    return this.#locked(ns, async () => {
      const a = this.#attachments.get(ns);
      if (!a) return undefined;
      await this.#closeListeners(a);
      this.#attachments.delete(ns);
      await this.#state.save();
      this.#log.info({ namespace: ns, [a.spec.mode]: a.spec.id }, 'detached');
      return a.spec;
    });
  }

  async list(): Promise<{ daemon: DaemonHealth; attachments: AttachmentStatus[] }> {
    const all = [...this.#attachments.values()].sort((x, y) =>
      x.spec.namespace < y.spec.namespace ? -1 : 1,
    );
    const [attachments, agentReachable] = await Promise.all([
      this.#statuses(all),
      probeSocket(this.#s.worker.socketPath),
    ]);
    return {
      daemon: {
        pid: process.pid,
        workerPid: this.#worker?.pid,
        agentSocket: this.#s.worker.socketPath,
        agentReachable,
        attachments: attachments.length,
        healthy: attachments.filter((a) => a.healthy).length,
      },
      attachments,
    };
  }

  // ---- attachments ----

  #newAttachment(spec: AttachSpec, binds = spec.binds.map((b) => parseBind(b))): Attachment {
    return {
      spec,
      binds,
      state: 'attaching',
      listening: [],
      netns: undefined,
      error: undefined,
      since: new Date().toISOString(),
      retryAt: 0,
    };
  }

  #setState(a: Attachment, state: AttachmentState, error?: string): void {
    if (a.state !== state) a.since = new Date().toISOString();
    a.state = state;
    a.error = error;
  }

  /** Helper in the namespace, then every socket to the worker. Throws with nothing left open. */
  async #open(a: Attachment): Promise<void> {
    this.#setState(a, 'attaching');
    a.listening = [];
    if (namespaceId(a.spec.namespace) === undefined)
      throw new HelperError(`namespace ${a.spec.namespace} does not exist`, 'ENONS');
    const netnsExec = this.#s.netnsExec;
    const result: HelperResult =
      this.#batch !== undefined
        ? await this.#batch.open({ namespace: a.spec.namespace, binds: a.binds })
        : await this.#helpers.run(() =>
            runListenerHelper({
              namespace: a.spec.namespace,
              binds: a.binds,
              backlog: this.#s.worker.limits.backlog,
              netnsExec: netnsExec === 'ip' ? 'ip' : 'nsenter',
              timeoutMs: this.#s.helperTimeoutMs,
            }),
          );
    const handles = result.listeners.map((l) => l.handle);
    try {
      for (const l of result.listeners) {
        const reply = await this.#workerRequest(
          {
            op: 'listen',
            seq: 0,
            key: a.spec.namespace,
            identity: { mode: a.spec.mode, id: a.spec.id },
            bind: l.bind.spec,
          },
          l.handle,
        );
        if (!reply.ok) throw new Error(`worker refused ${l.bind.spec}: ${reply.error}`);
        a.listening.push(reply.address ?? l.address);
      }
    } catch (err) {
      await this.#workerRequest({ op: 'close', seq: 0, key: a.spec.namespace }).catch(() => {});
      a.listening = [];
      throw err;
    } finally {
      // The worker has its own descriptors now (or failed): ours must not accept anything.
      for (const h of handles) h.close();
    }
    a.netns = result.netns;
    this.#setState(a, 'listening');
  }

  async #closeListeners(a: Attachment): Promise<void> {
    if (a.state === 'listening' || a.state === 'attaching' || a.listening.length > 0)
      await this.#workerRequest({ op: 'close', seq: 0, key: a.spec.namespace }).catch(() => {});
    a.listening = [];
  }

  async #locked<T>(namespace: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(namespace) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => {});
    this.#locks.set(namespace, tail);
    void tail.then(() => {
      if (this.#locks.get(namespace) === tail) this.#locks.delete(namespace);
    });
    return next;
  }

  /** (Re)open the given attachments as a restart or a new worker needs; failures are kept and retried. */
  async #restoreAll(
    namespaces: readonly string[],
  ): Promise<{ restored: number; missing: number; failed: number }> {
    const counts = { restored: 0, missing: 0, failed: 0 };
    await Promise.all(
      namespaces.map((ns) =>
        this.#locked(ns, async () => {
          const a = this.#attachments.get(ns);
          if (!a || this.#stopping) return;
          try {
            await this.#open(a);
            counts.restored++;
          } catch (err) {
            this.#markUnserved(a, err);
            if (a.state === 'namespace-missing') counts.missing++;
            else counts.failed++;
          }
        }),
      ),
    );
    return counts;
  }

  #markUnserved(a: Attachment, err: unknown): void {
    const missing = err instanceof HelperError && err.code === 'ENONS';
    const message = (err as Error).message ?? String(err);
    this.#setState(a, missing ? 'namespace-missing' : 'failed', message);
    a.retryAt = Date.now() + this.#s.namespaceCheckIntervalMs;
    this.#log.warn(
      { namespace: a.spec.namespace, [a.spec.mode]: a.spec.id, state: a.state, error: message },
      missing ? 'namespace missing: not served' : 'attachment not served',
    );
  }

  // ---- namespaces that vanish ----

  #watchNamespaces(): void {
    if (this.#watcher || !existsSync(NETNS_DIR)) return;
    try {
      this.#watcher = watch(NETNS_DIR, { persistent: false }, () => {
        clearTimeout(this.#watchDebounce);
        this.#watchDebounce = setTimeout(() => void this.#checkNamespaces(), 100);
        this.#watchDebounce.unref();
      });
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      // periodic checks still run
    }
  }

  /** Drop listeners of vanished namespaces; try missing and failed ones again when due. */
  async #checkNamespaces(): Promise<void> {
    if (this.#checking || this.#stopping) return;
    this.#checking = true;
    try {
      this.#watchNamespaces();
      const now = Date.now();
      const work: Promise<unknown>[] = [];
      for (const a of this.#attachments.values()) {
        const ns = a.spec.namespace;
        const id = namespaceId(ns);
        if (a.state === 'listening' && (id === undefined || (a.netns && id.ino !== a.netns.ino))) {
          work.push(
            this.#locked(ns, async () => {
              if (this.#attachments.get(ns) !== a || a.state !== 'listening') return;
              await this.#closeListeners(a);
              const why = id === undefined ? 'namespace deleted' : 'namespace replaced by a new one';
              this.#setState(a, 'namespace-missing', why);
              a.retryAt = 0;
              this.#log.warn({ namespace: ns, [a.spec.mode]: a.spec.id, reason: why }, 'listeners dropped');
            }),
          );
        } else if (
          (a.state === 'namespace-missing' || a.state === 'failed') &&
          id !== undefined &&
          now >= a.retryAt
        ) {
          work.push(
            this.#locked(ns, async () => {
              if (this.#attachments.get(ns) !== a || a.state === 'listening') return;
              try {
                await this.#open(a);
                this.#log.info(
                  { namespace: ns, [a.spec.mode]: a.spec.id, listen: a.listening },
                  'attached again',
                );
              } catch (err) {
                this.#markUnserved(a, err);
              }
            }),
          );
        }
      }
      await Promise.all(work);
    } finally {
      this.#checking = false;
    }
  }

  // ---- status ----

  async #statuses(list: readonly Attachment[]): Promise<AttachmentStatus[]> {
    let stats: WorkerStats | undefined;
    try {
      const reply = await this.#workerRequest({ op: 'stats', seq: 0 }, undefined, 5_000);
      if (reply.ok) stats = reply.stats;
    } catch {
      // worker down: nothing is listening
    }
    return list.map((a) => {
      const id = namespaceId(a.spec.namespace);
      const namespaceExists = id !== undefined && (a.netns === undefined || id.ino === a.netns.ino);
      const w = stats?.attachments[a.spec.namespace];
      const listening = a.state === 'listening' ? [...(w?.listening ?? [])] : [];
      return {
        id: a.spec.id,
        mode: a.spec.mode,
        namespace: a.spec.namespace,
        binds: a.spec.binds,
        state: a.state,
        listening,
        namespaceExists,
        healthy: a.state === 'listening' && namespaceExists && listening.length === a.binds.length,
        ...(a.error !== undefined ? { error: a.error } : {}),
        since: a.since,
        ...(w ? { connections: w.connections } : {}),
      };
    });
  }

  // ---- the worker ----

  #startWorker(): Promise<void> {
    const child = fork(WORKER_PATH, [], {
      // The supervisor's node flags, and the services' own whatever started the supervisor.
      execArgv: [...new Set([...process.execArgv, ...SERVICE_NODE_FLAGS])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
      // It serves tenant traffic: no secret of the supervisor's environment goes with it.
      env: withoutSecrets(process.env),
      ...(this.#s.workerUid !== undefined ? { uid: this.#s.workerUid } : {}),
      ...(this.#s.workerGid !== undefined ? { gid: this.#s.workerGid } : {}),
    });
    this.#worker = child;
    const startedAt = Date.now();
    this.#workerReady = new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null, signal: string | null) =>
        reject(new Error(`serving worker exited at start (${signal ?? code})`));
      child.once('exit', onExit);
      this.#pending.set(0, () => {
        child.off('exit', onExit);
        resolve();
      });
    });
    // Settings (and the SSRF node key) over IPC: argv is public, and the worker could not read a root-only
    // key file itself.
    const init: WorkerRequest = {
      op: 'init',
      seq: 0,
      settings: this.#s.worker,
      ...(this.#s.tokenKey ? { tokenKey: this.#s.tokenKey.toString('hex') } : {}),
    };
    child.send(init);
    child.on('message', (reply: WorkerReply) => {
      const done = this.#pending.get(reply.seq);
      if (done) {
        this.#pending.delete(reply.seq);
        done(reply);
      }
    });
    child.once('exit', (code, signal) => {
      const failed: WorkerReply = { seq: -1, ok: false, error: 'the serving worker exited' };
      for (const [seq, done] of this.#pending) if (seq !== 0) done({ ...failed, seq });
      this.#pending.clear();
      if (this.#stopping || this.#worker !== child) return;
      this.#log.error({ code, signal, pid: child.pid }, 'serving worker exited: starting a new one');
      if (Date.now() - startedAt > 60_000) this.#workerRestarts = 0;
      const delay = Math.min(30_000, 500 * 2 ** this.#workerRestarts++);
      this.#workerRestartsTotal++;
      for (const a of this.#attachments.values()) if (a.state === 'listening') this.#setState(a, 'attaching');
      setTimeout(() => {
        if (this.#stopping) return;
        this.#startWorker()
          .then(() => this.#restoreAll([...this.#attachments.keys()]))
          .catch((err: unknown) => this.#log.error({ err }, 'serving worker did not start'));
      }, delay).unref();
    });
    return this.#workerReady;
  }

  /** The worker's metrics text, or undefined when it is not running or keeps none. */
  async #workerMetrics(): Promise<string | undefined> {
    try {
      const reply = await this.#workerRequest({ op: 'metrics', seq: 0 }, undefined, 5_000);
      return reply.ok ? reply.metrics : undefined;
    } catch {
      return undefined;
    }
  }

  async #workerRequest(request: WorkerRequest, handle?: Server, timeoutMs = 30_000): Promise<WorkerReply> {
    await this.#workerReady;
    const worker = this.#worker;
    if (!worker?.connected) throw new Error('the serving worker is not running');
    const seq = ++this.#seq;
    return new Promise<WorkerReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`the serving worker did not answer ${request.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(seq, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      worker.send({ ...request, seq }, handle, {}, (err: Error | null) => {
        if (!err) return;
        clearTimeout(timer);
        this.#pending.delete(seq);
        reject(err);
      });
    });
  }

  // ---- the control socket ----

  /** Refuse to start beside a running daemon (or on a path that is not a socket); remove a stale socket. */
  #claimControlSocket(): Promise<void> {
    return claimSocketPath(this.#s.controlSocket, CONTROL_SOCKET);
  }

  async #listenControl(): Promise<void> {
    const server = createServer((socket) => this.#serveControl(socket));
    await listenOnSocketPath(server, this.#s.controlSocket, { ...CONTROL_SOCKET, mode: 0o600 });
    this.#control = server;
  }

  #serveControl(socket: Socket): void {
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
          return { ok: true, attachment: await this.attach(spec) };
        }
        case 'detach': {
          const detached = await this.detach(request);
          return detached ? { ok: true, detached } : { ok: true };
        }
        case 'list':
          return { ok: true, ...(await this.list()) };
      }
    } catch (err) {
      return { ok: false, error: (err as Error).message ?? String(err) };
    }
  }
}
