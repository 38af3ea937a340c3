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
 *   hand-over (SIGUSR2, `systemctl reload`): a new daemon is started with the control and admin sockets;
 *            this one stops taking control requests, lets those in progress finish, and sends it every
 *            attachment with the listening sockets its worker serves (taken back from the worker as raw
 *            handles: nobody accepts on them on the way). The new daemon's worker serves them; only then
 *            does the old worker stop accepting, finish its requests and exit, and this supervisor with it.
 *            No listener is closed at any moment, so no connection is refused.
 *
 * Operations on one namespace are serialised; helpers run at most attach_concurrency at a time.
 *
 * This file keeps the attachments; the rest has its own: the worker process (worker-process.ts), the
 * control socket (control-server.ts), the admin socket (daemon-admin.ts), the queues (concurrency.ts), and
 * everything that deals with namespaces (netns/: watching them, and the listener helpers).
 */
import type {
  BindAddress,
  IdentityMode,
  Logger,
  PassedDescriptor,
  Predecessor,
  Successor,
} from '@nmp/common';
import { parseBind, probeSocket } from '@nmp/common';
import { KeyedQueue, Semaphore } from './concurrency.js';
import { ControlServer } from './control-server.js';
import { DaemonAdmin } from './daemon-admin.js';
import { BatchOpener, runBatchHelper } from './netns/batch-helper.js';
import { runListenerHelper } from './netns/listener-helper.js';
import { HelperError, type HelperResult, type NetnsExec } from './netns/listeners.js';
import { type NetnsId, namespaceId } from './netns/namespace-id.js';
import { NamespaceWatch } from './netns/namespace-watch.js';
import {
  type AttachmentState,
  type AttachmentStatus,
  type AttachSpec,
  type DaemonHealth,
  ProtocolError,
} from './protocol.js';
import { loadState, StateFile } from './state-file.js';
import type { WorkerSettings, WorkerStats } from './worker.js';
import { WorkerProcess } from './worker-process.js';

export { WORKER_PATH } from './worker-process.js';

/** An attachment as a daemon being replaced describes it to its successor. */
interface HandedAttachment {
  readonly spec: AttachSpec;
  readonly state: AttachmentState;
  readonly netns?: NetnsId;
  readonly error?: string;
  readonly since: string;
}

/** The messages of a hand-over, old daemon to new, before the new one serves. */
type HandOffMessage =
  | { readonly op: 'daemon-attachments'; readonly attachments: HandedAttachment[] }
  | { readonly op: 'daemon-listener'; readonly namespace: string; readonly bind: string }
  | { readonly op: 'daemon-handoff-done' };

/** What the new daemon starts from when it replaces another (see `start`). */
export interface DaemonTakeOver {
  readonly predecessor: Predecessor;
  /** The control and admin sockets, passed as descriptors. */
  readonly controlFd?: number;
  readonly adminFd?: number;
  /** How long the predecessor may take to send its attachments (ms). */
  readonly timeoutMs?: number;
}

/** Collect the predecessor's attachments and listening handles until it says it is done. */
function receiveHandOff(
  predecessor: Predecessor,
  timeoutMs: number,
): Promise<{ attachments: HandedAttachment[]; listeners: Map<string, Map<string, object>> }> {
  return new Promise((resolve, reject) => {
    let attachments: HandedAttachment[] = [];
    const listeners = new Map<string, Map<string, object>>();
    const timer = setTimeout(
      () => reject(new Error(`the daemon being replaced sent no attachments within ${timeoutMs} ms`)),
      timeoutMs,
    );
    predecessor.onMessage((message, handle) => {
      const m = message as HandOffMessage;
      if (m?.op === 'daemon-attachments') attachments = m.attachments;
      else if (m?.op === 'daemon-listener' && handle) {
        const byBind = listeners.get(m.namespace) ?? new Map<string, object>();
        listeners.set(m.namespace, byBind);
        byBind.set(m.bind, handle as object);
      } else if (m?.op === 'daemon-handoff-done') {
        clearTimeout(timer);
        resolve({ attachments, listeners });
      }
    });
  });
}

function closeHandle(h: unknown): void {
  try {
    (h as { close?: () => void }).close?.();
  } catch {
    // closed already
  }
}

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
  /** Operations on one namespace, one after the other. */
  readonly #locks = new KeyedQueue();
  readonly #helpers: Semaphore;
  readonly #state: StateFile;
  readonly #batch: BatchOpener | undefined;
  readonly #worker: WorkerProcess;
  readonly #control: ControlServer;
  readonly #namespaces: NamespaceWatch;
  #admin: DaemonAdmin | undefined;
  #checking = false;
  #stopping = false;
  /** A hand-over to a new daemon is under way: no control request, no namespace check here. */
  #handingOver = false;
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
    this.#worker = new WorkerProcess({
      settings: settings.worker,
      ...(settings.tokenKey ? { tokenKey: settings.tokenKey } : {}),
      ...(settings.workerUid !== undefined ? { uid: settings.workerUid } : {}),
      ...(settings.workerGid !== undefined ? { gid: settings.workerGid } : {}),
      logger: settings.logger,
      // What the dead worker served is gone until the new one has it again.
      onExit: () => {
        for (const a of this.#attachments.values())
          if (a.state === 'listening') this.#setState(a, 'attaching');
      },
      onRestart: () => this.#restoreAll([...this.#attachments.keys()]),
    });
    this.#control = new ControlServer(settings.controlSocket, this);
    this.#namespaces = new NamespaceWatch(
      settings.namespaceCheckIntervalMs,
      () => void this.#checkNamespaces(),
    );
  }

  get workerPid(): number | undefined {
    return this.#worker.pid;
  }

  /**
   * Fork the worker, open the control socket, then restore the file's attachments (see `restored`).
   * With `takeOver`, this daemon replaces a running one: the attachments and their listening sockets come
   * from it, the worker serves those sockets before the control socket is served (`restored` covers the
   * attachments that came without sockets).
   */
  async start(takeOver?: DaemonTakeOver): Promise<void> {
    let specs: AttachSpec[];
    let handed: Map<string, Map<string, object>> = new Map();
    if (takeOver) {
      const received = await receiveHandOff(takeOver.predecessor, takeOver.timeoutMs ?? 60_000);
      handed = received.listeners;
      specs = received.attachments.map((h) => h.spec);
      for (const h of received.attachments) {
        const a = this.#newAttachment(h.spec);
        a.netns = h.netns;
        a.since = h.since;
        if (h.state !== 'listening' && h.state !== 'attaching') this.#setState(a, h.state, h.error);
        this.#attachments.set(h.spec.namespace, a);
      }
    } else {
      await this.#control.claim();
      const loaded = loadState(this.#s.stateFile);
      for (const r of loaded.rejected) this.#log.warn({ entry: r }, 'attachments file: entry ignored');
      specs = loaded.attachments;
      for (const spec of specs) this.#attachments.set(spec.namespace, this.#newAttachment(spec));
    }
    await this.#worker.start();
    const adopted = new Set<string>();
    for (const [namespace, byBind] of handed) {
      const a = this.#attachments.get(namespace);
      if (a && (await this.#serveHanded(a, byBind))) adopted.add(namespace);
      else for (const h of byBind.values()) closeHandle(h);
    }
    if (takeOver) await this.#state.save();
    await this.#control.listen(takeOver?.controlFd);
    if (this.#s.adminSocket) {
      this.#admin = new DaemonAdmin({
        workerMetrics: () => this.#worker.metrics(),
        workerRunning: () => this.#worker.running,
        workerRestarts: () => this.#worker.restarts,
        attachmentStates: () => [...this.#attachments.values()].map((a) => a.state),
      });
      await this.#admin.listen(this.#s.adminSocket, takeOver?.adminFd);
    }
    this.#namespaces.start();
    const rest = specs.map((s) => s.namespace).filter((ns) => !adopted.has(ns));
    this.restored = this.#restoreAll(rest).then((r) => ({ ...r, restored: r.restored + adopted.size }));
    void this.restored.then((r) =>
      this.#log.info(
        { ...r, total: specs.length, ...(takeOver ? { handedOver: adopted.size } : {}) },
        'attachments restored',
      ),
    );
  }

  /** Serve the sockets a predecessor handed over for one attachment; false (nothing kept) if not all of them. */
  async #serveHanded(a: Attachment, byBind: Map<string, object>): Promise<boolean> {
    if (!a.spec.binds.every((b) => byBind.has(b))) return false;
    a.listening = [];
    try {
      for (const bind of a.spec.binds) {
        const reply = await this.#worker.request(
          {
            op: 'listen',
            seq: 0,
            key: a.spec.namespace,
            identity: { mode: a.spec.mode, id: a.spec.id },
            bind,
          },
          byBind.get(bind)!,
        );
        if (!reply.ok) throw new Error(`worker refused ${bind}: ${reply.error}`);
        a.listening.push(reply.address ?? bind);
      }
    } catch (err) {
      await this.#worker.request({ op: 'close', seq: 0, key: a.spec.namespace }).catch(() => {});
      a.listening = [];
      this.#log.warn(
        { namespace: a.spec.namespace, error: (err as Error).message },
        'handed-over listeners not served',
      );
      return false;
    }
    this.#setState(a, 'listening');
    return true;
  }

  /** The control and admin sockets, for a hand-over to a new daemon. */
  descriptors(): PassedDescriptor[] {
    const control = this.#control.descriptor();
    return [...(control ? [control] : []), ...(this.#admin?.descriptors() ?? [])];
  }

  /**
   * The old daemon's part of a hand-over (the successor was started with descriptors()): stop taking
   * control requests and wait for those in progress, then send every attachment and, for those being
   * served, their listening sockets, still served here until the successor's worker has them.
   */
  async handOff(successor: Successor): Promise<void> {
    this.#handingOver = true;
    this.#namespaces.stop();
    await this.#control.close({ keepPath: true });
    await this.#locks.idle();
    const all = [...this.#attachments.values()];
    const attachments: HandedAttachment[] = all.map((a) => ({
      spec: a.spec,
      state: a.state,
      ...(a.netns ? { netns: a.netns } : {}),
      ...(a.error !== undefined ? { error: a.error } : {}),
      since: a.since,
    }));
    await successor.send({ op: 'daemon-attachments', attachments } satisfies HandOffMessage);
    let sockets = 0;
    for (const a of all) {
      if (a.state !== 'listening') continue;
      for (const bind of a.spec.binds) {
        const reply = await this.#worker.request({ op: 'export', seq: 0, key: a.spec.namespace, bind });
        if (!reply.ok || reply.handle === undefined) {
          this.#log.warn(
            { namespace: a.spec.namespace, bind, error: reply.ok ? 'no handle' : reply.error },
            'listener not handed over',
          );
          continue;
        }
        try {
          await successor.send(
            { op: 'daemon-listener', namespace: a.spec.namespace, bind } satisfies HandOffMessage,
            reply.handle,
          );
          sockets++;
        } finally {
          // The successor has its own descriptor now; the worker keeps serving its own until it retires.
          closeHandle(reply.handle);
        }
      }
    }
    await successor.send({ op: 'daemon-handoff-done' } satisfies HandOffMessage);
    this.#log.info({ attachments: attachments.length, sockets }, 'attachments handed over');
  }

  /** After the successor serves: the worker finishes its requests and exits; the sockets' files stay. */
  async retire(): Promise<void> {
    this.#stopping = true;
    await this.#admin?.close({ keepPaths: true });
    await this.#worker.stop();
  }

  /** The hand-over failed: take control requests and watch namespaces again. */
  async resume(): Promise<void> {
    this.#handingOver = false;
    if (this.#stopping) return;
    await this.#control.claim();
    await this.#control.listen();
    this.#namespaces.start();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#namespaces.stop();
    await this.#control.close();
    await this.#admin?.close();
    await this.#worker.stop();
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
    mode?: IdentityMode;
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
        workerPid: this.#worker.pid,
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
        const reply = await this.#worker.request(
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
      await this.#worker.request({ op: 'close', seq: 0, key: a.spec.namespace }).catch(() => {});
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
      await this.#worker.request({ op: 'close', seq: 0, key: a.spec.namespace }).catch(() => {});
    a.listening = [];
  }

  #locked<T>(namespace: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(namespace, fn);
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

  /** Drop listeners of vanished namespaces; try missing and failed ones again when due. */
  async #checkNamespaces(): Promise<void> {
    if (this.#checking || this.#stopping || this.#handingOver) return;
    this.#checking = true;
    try {
      this.#namespaces.watch();
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
      const reply = await this.#worker.request({ op: 'stats', seq: 0 }, undefined, 5_000);
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
}
