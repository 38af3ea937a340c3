/*
 * OvsdbClient: one database (e.g. OVN_Southbound) on one server or on the members of a cluster, kept
 * connected, with its monitors' replicas kept current.
 *
 * Connecting (each attempt, one remote):
 *   1. connect (tcp, ssl with neutron's key/certificate/CA files, or unix);
 *   2. look at the `_Server` database's row for our database (OVS >= 2.9): a clustered member that is not
 *      connected to its cluster, or is behind what we have already seen (raft index), is left for the next
 *      remote; with `leader: 'require'` so is a follower, with 'prefer' (the default) a follower is left
 *      only while other remotes of this round remain untried. `set_db_change_aware` keeps the server from
 *      dropping us on schema changes; the row stays monitored and a change of it moves us elsewhere;
 *   3. get_schema, then every monitor: monitor_cond_since (OVS >= 2.12; only the transactions missed are
 *      sent), else monitor_cond (the server filters), else monitor (the replica filters);
 *   4. connected. Any failure closes the session and the next attempt begins.
 *
 * Several remotes are tried in turn from a random one (so a thousand chassis do not all pick the first);
 * a failed round waits with exponential back-off (1 s doubling to 8 s by default, as OVS's reconnect does,
 * scaled by a random factor in [0.5, 1]). Keep-alive is the session's echo probe (jsonrpc.ts).
 *
 * Which server to be on is server-choice.ts's (step 2, the walk over the remotes and the back-off), the
 * monitors of a session monitor-session.ts's (step 3 and the updates); this file runs the attempts, keeps the
 * state and carries transactions.
 *
 * Nothing here emits 'error' events or throws into the event loop: failures are states and log lines.
 */
import { EventEmitter } from 'node:events';
import { LogEvent } from '@nmp/common';
import type { Condition } from './conditions.js';
import { OvsdbError, TransactionError } from './errors.js';
import { JsonRpcSession } from './jsonrpc.js';
import { type MonitorMethod, MonitorSession, Registration } from './monitor-session.js';
import { connectRemote, parseRemotes, type Remote, type TlsFiles } from './remote.js';
import type { MonitorSpec, Replica } from './replica.js';
import { type DatabaseSchema, parseSchema } from './schema.js';
import { type LeaderPreference, SERVER_MONITOR_ID, ServerChoice, SoftRefusal } from './server-choice.js';

export type { MonitorMethod } from './monitor-session.js';
export type { LeaderPreference } from './server-choice.js';

/** The subset of a pino logger the client uses. */
export interface OvsdbLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface OvsdbClientOptions {
  /** `tcp:…`, `ssl:…`, `unix:…`, comma-separated for the members of a cluster; or parsed remotes. */
  readonly remotes: string | readonly Remote[];
  readonly database: string;
  readonly tls?: TlsFiles;
  /** Which cluster member to stay on (default 'prefer': the leader when one answers). */
  readonly leader?: LeaderPreference;
  /** Echo probe after this much silence; 0: none of ours (default 5000 ms, OVS's default). */
  readonly probeIntervalMs?: number;
  readonly connectTimeoutMs?: number;
  /** Limit for each request of the handshake (a large database's first snapshot takes time). */
  readonly requestTimeoutMs?: number;
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
  /** Largest message accepted (default 256 MiB: a whole Southbound snapshot is one message). */
  readonly maxMessageBytes?: number;
  readonly logger?: OvsdbLogger;
  /** For tests: a deterministic random source in [0, 1). */
  readonly random?: () => number;
}

export type ClientState = 'idle' | 'connecting' | 'connected' | 'waiting' | 'closed';

export interface ClientStats {
  /** Sessions that reached the connected state. */
  readonly connects: number;
  /** Connection attempts that failed before that. */
  readonly failedAttempts: number;
  /** Sessions lost after being connected. */
  readonly disconnects: number;
  /** Requests sent in all sessions (the handshake's, transactions, echo probes excluded). */
  readonly requests: number;
  readonly lastError: string | undefined;
  /** Monitor method of the current (or last) session. */
  readonly monitorMethod: MonitorMethod | undefined;
}

const NOOP_LOGGER: OvsdbLogger = { debug() {}, info() {}, warn() {}, error() {} };

export class OvsdbClient extends EventEmitter {
  readonly database: string;
  readonly remotes: readonly Remote[];
  readonly #o: OvsdbClientOptions;
  readonly #log: OvsdbLogger;
  readonly #choice: ServerChoice;
  readonly #registrations: Registration[] = [];
  #state: ClientState = 'idle';
  #session: JsonRpcSession | undefined;
  /** The monitors of the current session (or of the last one, for stats). */
  #monitors: MonitorSession | undefined;
  #remote: Remote | undefined;
  #schema: DatabaseSchema | undefined;
  #connectedAt = 0;
  #wake: (() => void) | undefined;
  #waitTimer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #monitorCounter = 0;
  #stats = {
    connects: 0,
    failedAttempts: 0,
    disconnects: 0,
    requests: 0,
    lastError: undefined as string | undefined,
  };

  constructor(options: OvsdbClientOptions) {
    super();
    this.#o = options;
    this.database = options.database;
    this.#choice = new ServerChoice({
      remotes: typeof options.remotes === 'string' ? parseRemotes(options.remotes) : [...options.remotes],
      database: options.database,
      ...(options.leader !== undefined ? { leader: options.leader } : {}),
      ...(options.backoffMinMs !== undefined ? { backoffMinMs: options.backoffMinMs } : {}),
      ...(options.backoffMaxMs !== undefined ? { backoffMaxMs: options.backoffMaxMs } : {}),
      random: options.random ?? Math.random,
    });
    this.remotes = this.#choice.remotes;
    this.#log = options.logger ?? NOOP_LOGGER;
  }

  get state(): ClientState {
    return this.#state;
  }

  /** Connected, schema read and every monitor synced: replicas are current. */
  get connected(): boolean {
    return this.#state === 'connected';
  }

  /** The remote of the current session. */
  get remote(): string | undefined {
    return this.#state === 'connected' ? this.#remote?.text : undefined;
  }

  get schema(): DatabaseSchema | undefined {
    return this.#schema;
  }

  get stats(): ClientStats {
    return { ...this.#stats, monitorMethod: this.#monitors?.method };
  }

  /**
   * Add a monitor: its replica is loaded at every connection (the current one too, if connected) and kept
   * current. Tables or columns the server does not have are left out (see Replica.missing).
   */
  monitor(spec: MonitorSpec): Replica {
    const reg = new Registration(spec);
    this.#registrations.push(reg);
    const session = this.#session;
    const monitors = this.#monitors;
    if (this.#state === 'connected' && session && monitors?.rpc === session) {
      monitors.start(reg).catch((err) => this.#drop(session, err));
    }
    return reg.replica;
  }

  /**
   * Change a monitored table's conditions. Connected to a server with monitor_cond, the server is told
   * (monitor_cond_change) and the replica receives the difference; with plain monitor the monitor is
   * restarted; disconnected, the next connection uses them (with a full reload).
   */
  async setWhere(replica: Replica, table: string, where: readonly Condition[] | undefined): Promise<void> {
    const reg = this.#registrations.find((r) => r.replica === replica);
    if (!reg) throw new OvsdbError('OVSDB_ERR_SCHEMA', 'replica does not belong to this client');
    replica.setWantedWhere(table, where);
    // One change at a time per monitor: each renames the monitor, and the next must name the new id.
    const next = reg.changes.then(() => reg.session?.syncWhere(reg));
    reg.changes = next.catch(() => {});
    await next;
  }

  /** Start connecting (and keep reconnecting until close()). */
  start(): void {
    if (this.#running || this.#isClosed()) return;
    this.#running = this.#loop();
  }

  /** Resolves when connected and synced; rejects after `timeoutMs`, or when the client is closed. */
  ready(timeoutMs = 30_000): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.#isClosed()) return Promise.reject(new OvsdbError('OVSDB_ERR_CLOSED', 'client closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new OvsdbError(
            'OVSDB_ERR_TIMEOUT',
            `${this.database} not connected within ${timeoutMs} ms${this.#stats.lastError ? ` (${this.#stats.lastError})` : ''}`,
          ),
        );
      }, timeoutMs);
      const onState = (state: ClientState) => {
        if (state === 'connected') {
          cleanup();
          resolve();
        } else if (state === 'closed') {
          cleanup();
          reject(new OvsdbError('OVSDB_ERR_CLOSED', 'client closed'));
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.off('state', onState);
      };
      this.on('state', onState);
    });
  }
  /** Run a transaction (RFC 7047 §4.1.3). Rejects when not connected or when an operation failed. */
  async transact(operations: readonly object[], timeoutMs = 30_000): Promise<unknown[]> {
    const session = this.#session;
    if (this.#state !== 'connected' || !session)
      throw new OvsdbError('OVSDB_ERR_NOT_CONNECTED', `${this.database}: not connected`);
    const result = await this.#request(session, 'transact', [this.database, ...operations], timeoutMs);
    if (!Array.isArray(result))
      throw new OvsdbError('OVSDB_ERR_PROTOCOL', 'transact: the result is not an array');
    const failed = result.findIndex((r) => r !== null && typeof r === 'object' && 'error' in r);
    if (failed !== -1) {
      const e = result[failed] as { error?: unknown; details?: unknown };
      const where = failed < operations.length ? `operation ${failed}` : 'commit';
      throw new TransactionError(
        `transact: ${where} failed: ${String(e.error)}${e.details ? ` (${String(e.details).slice(0, 300)})` : ''}`,
        result,
      );
    }
    return result;
  }

  /** Any request on the current session (e.g. get_schema, list_dbs). */
  async request(method: string, params: unknown, timeoutMs = 30_000): Promise<unknown> {
    const session = this.#session;
    if (this.#state !== 'connected' || !session)
      throw new OvsdbError('OVSDB_ERR_NOT_CONNECTED', `${this.database}: not connected`);
    return this.#request(session, method, params, timeoutMs);
  }

  /** Drop the current session (the next attempt starts at once, on the next remote). */
  reconnect(): void {
    this.#session?.close(new OvsdbError('OVSDB_ERR_CLOSED', 'reconnect requested'));
  }

  async close(): Promise<void> {
    if (this.#isClosed()) return;
    this.#setState('closed');
    this.#session?.close();
    if (this.#waitTimer) clearTimeout(this.#waitTimer);
    this.#wake?.();
    await this.#running?.catch(() => {});
  }

  // --- The connection loop ---------------------------------------------------------------------------------

  async #loop(): Promise<void> {
    while (!this.#isClosed()) {
      const remote = this.#choice.next();
      let reachedConnected = false;
      try {
        reachedConnected = await this.#attempt(remote);
      } catch (err) {
        if (this.#isClosed()) break;
        const soft = err instanceof SoftRefusal;
        this.#stats.lastError = `${remote.text}: ${(err as Error).message}`;
        if (!soft) this.#stats.failedAttempts++;
        this.#log[soft ? 'info' : 'warn'](
          {
            code: soft ? LogEvent.OVSDB_SERVER_SKIPPED : LogEvent.OVSDB_CONNECT_FAILED,
            remote: remote.text,
            error: (err as Error).message,
          },
          soft ? 'skipping this database server' : 'cannot connect to the database server',
        );
      }
      if (this.#isClosed()) break;
      const delay = this.#choice.ended(reachedConnected ? Date.now() - this.#connectedAt : undefined);
      if (delay > 0) {
        this.#setState('waiting');
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          this.#waitTimer = setTimeout(resolve, delay);
        });
        this.#wake = undefined;
      }
    }
  }

  /** One connection attempt; resolves when the session ends (true if it got connected). */
  async #attempt(remote: Remote): Promise<boolean> {
    this.#setState('connecting');
    const socket = await connectRemote(remote, {
      ...(this.#o.tls ? { tls: this.#o.tls } : {}),
      timeoutMs: this.#o.connectTimeoutMs ?? 10_000,
    });
    if (this.#isClosed()) {
      socket.destroy();
      return false;
    }
    let closedReason: OvsdbError | undefined;
    let onClosed: (() => void) | undefined;
    const ended = new Promise<void>((resolve) => {
      onClosed = resolve;
    });
    const session = new JsonRpcSession(socket, {
      maxMessageBytes: this.#o.maxMessageBytes ?? 256 * 1024 * 1024,
      probeIntervalMs: this.#o.probeIntervalMs ?? 5000,
      onNotification: (method, params) => this.#onNotification(session, method, params),
      onClose: (reason) => {
        closedReason = reason;
        onClosed!();
      },
      onDropped: (why) =>
        this.#log.warn(
          { code: LogEvent.OVSDB_MESSAGE_DROPPED, remote: remote.text, why },
          'dropped a message from the server',
        ),
    });
    this.#session = session;
    this.#remote = remote;
    let connected = false;
    try {
      await Promise.race([
        this.#handshake(session),
        ended.then(() => {
          throw closedReason ?? new OvsdbError('OVSDB_ERR_DISCONNECTED', 'connection closed');
        }),
      ]);
      connected = true;
      this.#connectedAt = Date.now();
      this.#choice.connected();
      this.#stats.connects++;
      this.#setState('connected');
      this.#log.info(
        {
          code: LogEvent.OVSDB_CONNECTED,
          remote: remote.text,
          database: this.database,
          method: this.#monitors?.method,
        },
        'connected to the database',
      );
      this.emit('connected', remote.text);
      await ended;
      this.#stats.disconnects++;
      this.#stats.lastError = `${remote.text}: ${closedReason?.message ?? 'closed'}`;
      if (!this.#isClosed()) {
        this.#log.warn(
          { code: LogEvent.OVSDB_DISCONNECTED, remote: remote.text, reason: closedReason?.message },
          'lost the database connection; reconnecting',
        );
        this.#setState('connecting');
      }
      this.emit('disconnected', closedReason?.message ?? 'closed');
      return true;
    } catch (err) {
      session.close(err instanceof OvsdbError ? err : new OvsdbError('OVSDB_ERR_PROTOCOL', String(err)));
      if (connected) return true;
      throw err;
    } finally {
      if (this.#session === session) this.#session = undefined;
      if (this.#monitors?.rpc === session) this.#monitors.end();
      for (const reg of this.#registrations) if (reg.session?.rpc === session) reg.session = undefined;
    }
  }

  /** Steps 2 and 3 of the top comment. */
  async #handshake(session: JsonRpcSession): Promise<void> {
    const request = (method: string, params: unknown) => this.#request(session, method, params);
    await this.#choice.check(request);
    this.#schema = parseSchema(await request('get_schema', [this.database]));
    const monitors = new MonitorSession(session, {
      database: this.database,
      schema: this.#schema,
      request,
      newMonitorId: () => `m${++this.#monitorCounter}`,
      log: this.#log,
    });
    this.#monitors = monitors;
    for (const reg of this.#registrations) await monitors.start(reg);
  }

  #onNotification(session: JsonRpcSession, method: string, params: unknown): void {
    if (session !== this.#session) return;
    const p = Array.isArray(params) ? params : [];
    switch (method) {
      case 'update':
      case 'update2':
      case 'update3': {
        const id = p[0];
        if (Array.isArray(id) && id[0] === SERVER_MONITOR_ID) {
          this.#choice.recheck(
            (m, params) => this.#request(session, m, params),
            p[1],
            (why) => this.#drop(session, why),
          );
          return;
        }
        const monitors = this.#monitors;
        if (monitors?.rpc !== session) {
          this.#log.debug({ code: LogEvent.OVSDB_UNKNOWN_MONITOR, method }, 'update for an unknown monitor');
          return;
        }
        const diverged = monitors.onUpdate(this.#registrations, method, p);
        if (diverged) this.#drop(session, diverged);
        return;
      }
      case 'monitor_canceled':
        // The database went away or changed schema: reconnecting reloads the schema and the monitors.
        this.#drop(session, new OvsdbError('OVSDB_ERR_PROTOCOL', 'the server cancelled a monitor'));
        return;
      default:
        return;
    }
  }

  #drop(session: JsonRpcSession, err: unknown): void {
    const e = err instanceof OvsdbError ? err : new OvsdbError('OVSDB_ERR_PROTOCOL', String(err));
    session.close(e);
  }

  #request(session: JsonRpcSession, method: string, params: unknown, timeoutMs?: number): Promise<unknown> {
    this.#stats.requests++;
    return session.request(method, params, timeoutMs ?? this.#o.requestTimeoutMs ?? 60_000);
  }

  /** A method, not a comparison: TypeScript would narrow the field across the awaits in between. */
  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #setState(state: ClientState): void {
    if (this.#state === state || (this.#isClosed() && state !== 'closed')) return;
    this.#state = state;
    this.emit('state', state);
  }
}
