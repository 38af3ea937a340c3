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
 * Nothing here emits 'error' events or throws into the event loop: failures are states and log lines.
 */
import { EventEmitter } from 'node:events';
import type { Condition } from './conditions.js';
import { isUuid, ZERO_UUID } from './data.js';
import { OvsdbError, RpcError, TransactionError } from './errors.js';
import { JsonRpcSession } from './jsonrpc.js';
import { connectRemote, parseRemotes, type Remote, type TlsFiles } from './remote.js';
import { type MonitorSpec, Replica } from './replica.js';
import { type DatabaseSchema, parseSchema } from './schema.js';

/** The subset of a pino logger the client uses. */
export interface OvsdbLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type LeaderPreference = 'require' | 'prefer' | 'any';

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

export type MonitorMethod = 'monitor_cond_since' | 'monitor_cond' | 'monitor';

const METHODS: readonly MonitorMethod[] = ['monitor_cond_since', 'monitor_cond', 'monitor'];

interface ServerRow {
  readonly model: string;
  readonly connected: boolean;
  readonly leader: boolean;
  readonly index: number | undefined;
  readonly cid: string | undefined;
}

/** A connection attempt that reached a server we chose not to stay on (not a failure of the server). */
class SoftRefusal extends OvsdbError {}

interface Registration {
  readonly replica: Replica;
  /** Monitor ids this replica answers to (a condition change makes a new one). */
  ids: Set<string>;
  current: string;
  generation: number;
  /** Conditions the server acknowledged, per table (JSON, for comparison). */
  acked: Map<string, string>;
  /** The session these ids belong to. */
  session: JsonRpcSession | undefined;
  /** Condition changes, one after the other. */
  changes: Promise<void>;
}

const NOOP_LOGGER: OvsdbLogger = { debug() {}, info() {}, warn() {}, error() {} };

export class OvsdbClient extends EventEmitter {
  readonly database: string;
  readonly remotes: readonly Remote[];
  readonly #o: OvsdbClientOptions;
  readonly #log: OvsdbLogger;
  readonly #random: () => number;
  readonly #registrations: Registration[] = [];
  #state: ClientState = 'idle';
  #session: JsonRpcSession | undefined;
  #remote: Remote | undefined;
  #schema: DatabaseSchema | undefined;
  #method: MonitorMethod | undefined;
  #filterLocally = false;
  #next: number;
  /** Attempts that failed since the last success, and within the current round. */
  #failures = 0;
  #roundTried = 0;
  #maxIndex = 0;
  #cid: string | undefined;
  /** Set after a round without a connection: followers and members behind are accepted then. */
  #relaxed = false;
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
    this.remotes = typeof options.remotes === 'string' ? parseRemotes(options.remotes) : [...options.remotes];
    if (this.remotes.length === 0) throw new OvsdbError('OVSDB_ERR_REMOTE', 'no remote given');
    this.#log = options.logger ?? NOOP_LOGGER;
    this.#random = options.random ?? Math.random;
    this.#next = Math.floor(this.#random() * this.remotes.length);
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
    return { ...this.#stats, monitorMethod: this.#method };
  }

  /**
   * Add a monitor: its replica is loaded at every connection (the current one too, if connected) and kept
   * current. Tables or columns the server does not have are left out (see Replica.missing).
   */
  monitor(spec: MonitorSpec): Replica {
    const replica = new Replica(spec);
    const reg: Registration = {
      replica,
      ids: new Set(),
      current: '',
      generation: 0,
      acked: new Map(),
      session: undefined,
      changes: Promise.resolve(),
    };
    this.#registrations.push(reg);
    const session = this.#session;
    if (this.#state === 'connected' && session && this.#schema) {
      this.#startMonitor(session, reg).catch((err) => this.#drop(session, err));
    }
    return replica;
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
    const next = reg.changes.then(() => this.#syncWhere(reg));
    reg.changes = next.catch(() => {});
    await next;
  }

  /** Tell the server about conditions wanted but not yet acknowledged (on this monitor's session). */
  async #syncWhere(reg: Registration): Promise<void> {
    const session = reg.session;
    if (!session || session.closed || session !== this.#session) return;
    const replica = reg.replica;
    const stale = Object.keys(replica.spec).filter(
      (t) => replica.has(t) && reg.acked.get(t) !== JSON.stringify(replica.whereOf(t) ?? []),
    );
    if (stale.length === 0) return;
    if (this.#method === 'monitor') {
      // No conditions on the server: reload the monitor, filtering here.
      await this.#restartMonitor(session, reg);
      return;
    }
    const newId = `${reg.current.split('.')[0]}.${++reg.generation}`;
    const wanted = stale.map((t) => [t, JSON.stringify(replica.whereOf(t) ?? [])] as const);
    reg.ids.add(newId);
    const oldId = reg.current;
    try {
      await this.#request(session, 'monitor_cond_change', [oldId, newId, replica.conditionRequests(stale)]);
    } catch (err) {
      reg.ids.delete(newId);
      if (err instanceof RpcError) {
        // The server refused the change: reload, so that the copy matches what was asked.
        await this.#restartMonitor(session, reg);
        return;
      }
      throw err;
    }
    reg.current = newId;
    reg.ids.delete(oldId);
    for (const [t, w] of wanted) reg.acked.set(t, w);
    // Asked for again meanwhile: go on until the server has the latest.
    await this.#syncWhere(reg);
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
      const remote = this.remotes[this.#next % this.remotes.length]!;
      this.#next = (this.#next + 1) % this.remotes.length;
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
            code: soft ? 'OVSDB_SERVER_SKIPPED' : 'OVSDB_CONNECT_FAILED',
            remote: remote.text,
            error: (err as Error).message,
          },
          soft ? 'skipping this database server' : 'cannot connect to the database server',
        );
      }
      if (this.#isClosed()) break;
      let delay = 0;
      // A session that ends right after it began counts as a failure, or a flapping server is hammered.
      if (reachedConnected && Date.now() - this.#connectedAt >= (this.#o.backoffMinMs ?? 1000) * 5) {
        this.#failures = 0;
        this.#roundTried = 0;
        this.#relaxed = false;
      } else {
        this.#failures++;
        this.#roundTried++;
        if (this.#roundTried >= this.remotes.length) {
          // A whole round failed: wait before the next one, and be less choosy in it.
          this.#roundTried = 0;
          this.#relaxed = true;
          const rounds = Math.ceil(this.#failures / this.remotes.length);
          const min = this.#o.backoffMinMs ?? 1000;
          const max = this.#o.backoffMaxMs ?? 8000;
          delay = Math.min(max, min * 2 ** Math.min(rounds - 1, 20)) * (0.5 + this.#random() / 2);
        }
      }
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
          { code: 'OVSDB_MESSAGE_DROPPED', remote: remote.text, why },
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
      this.#relaxed = false;
      this.#stats.connects++;
      this.#setState('connected');
      this.#log.info(
        { code: 'OVSDB_CONNECTED', remote: remote.text, database: this.database, method: this.#method },
        'connected to the database',
      );
      this.emit('connected', remote.text);
      await ended;
      this.#stats.disconnects++;
      this.#stats.lastError = `${remote.text}: ${closedReason?.message ?? 'closed'}`;
      if (!this.#isClosed()) {
        this.#log.warn(
          { code: 'OVSDB_DISCONNECTED', remote: remote.text, reason: closedReason?.message },
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
      for (const reg of this.#registrations) if (reg.session === session) reg.session = undefined;
    }
  }

  async #handshake(session: JsonRpcSession): Promise<void> {
    await this.#checkServer(session);
    const schemaJson = await this.#request(session, 'get_schema', [this.database]);
    this.#schema = parseSchema(schemaJson);
    this.#method = undefined;
    for (const reg of this.#registrations) await this.#startMonitor(session, reg);
  }

  /** Step 2 of the top comment. */
  async #checkServer(session: JsonRpcSession): Promise<void> {
    let rows: unknown;
    try {
      rows = await this.#request(session, 'monitor_cond', [
        '_Server',
        ['nmp-server'],
        {
          Database: [
            {
              columns: ['name', 'model', 'connected', 'leader', 'index', 'cid'],
              where: [['name', '==', this.database]],
            },
          ],
        },
      ]);
    } catch (err) {
      if (err instanceof RpcError) return; // no _Server database (OVS < 2.9): nothing to check
      throw err;
    }
    const row = firstServerRow(rows);
    if (row === undefined)
      throw new OvsdbError('OVSDB_ERR_PROTOCOL', `the server does not serve ${this.database}`);
    this.#judgeServer(row, false);
    try {
      await this.#request(session, 'set_db_change_aware', [true]);
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
    }
  }

  /** Throw SoftRefusal when this member is not one to stay on (see the top comment). */
  #judgeServer(row: ServerRow, connected: boolean): void {
    if (row.model !== 'clustered') return;
    if (row.cid !== undefined && row.cid !== this.#cid) {
      // A different (or re-created) cluster: raft indexes start over.
      this.#cid = row.cid;
      this.#maxIndex = 0;
    }
    // The last untried remote of a round, or any after a fruitless round, is taken if merely not ideal.
    const lastOfRound = this.#relaxed || this.#roundTried + 1 >= this.remotes.length;
    if (!row.connected)
      throw new SoftRefusal('OVSDB_ERR_PROTOCOL', 'cluster member not connected to its cluster');
    if (row.index !== undefined) {
      if (row.index < this.#maxIndex && !lastOfRound)
        throw new SoftRefusal(
          'OVSDB_ERR_PROTOCOL',
          `cluster member behind (index ${row.index} < ${this.#maxIndex})`,
        );
      this.#maxIndex = Math.max(this.#maxIndex, row.index);
    }
    const pref = this.#o.leader ?? 'prefer';
    if (!row.leader && this.remotes.length > 1) {
      if (pref === 'require') throw new SoftRefusal('OVSDB_ERR_PROTOCOL', 'cluster member is not the leader');
      if (pref === 'prefer' && !connected && !lastOfRound)
        throw new SoftRefusal(
          'OVSDB_ERR_PROTOCOL',
          'cluster member is not the leader (trying the others first)',
        );
    }
  }

  async #startMonitor(session: JsonRpcSession, reg: Registration): Promise<void> {
    const schema = this.#schema!;
    const replica = reg.replica;
    replica.plan(schema);
    if (replica.missing.length > 0)
      this.#log.info(
        { code: 'OVSDB_SCHEMA_LACKS', missing: replica.missing },
        'the server schema lacks some monitored tables or columns',
      );
    const base = `m${++this.#monitorCounter}`;
    reg.generation = 0;
    reg.current = base;
    reg.ids = new Set([base]);
    reg.session = session;
    // Conditions changed while away make the transaction id useless: rows matching only the new conditions
    // would not be resent. Then reload whole.
    const wantedJson = new Map<string, string>();
    for (const t of Object.keys(replica.spec)) wantedJson.set(t, JSON.stringify(replica.whereOf(t) ?? []));
    const condsUnchanged = [...wantedJson].every(([t, w]) => reg.acked.get(t) === w);
    const methods = this.#method ? METHODS.slice(METHODS.indexOf(this.#method)) : METHODS;
    for (const method of methods) {
      try {
        if (method === 'monitor_cond_since') {
          const since =
            replica.lastTxnId && condsUnchanged && !replica.diverged && replica.synced
              ? replica.lastTxnId
              : ZERO_UUID;
          const result = await this.#request(session, method, [
            this.database,
            base,
            replica.requests(true),
            since,
          ]);
          if (!Array.isArray(result) || result.length !== 3 || typeof result[0] !== 'boolean')
            throw new OvsdbError('OVSDB_ERR_PROTOCOL', 'monitor_cond_since: malformed result');
          const [found, lastId, updates] = result as [boolean, unknown, unknown];
          this.#method = method;
          this.#filterLocally = false;
          if (found && since !== ZERO_UUID) replica.applyUpdate(updates, 'update2', false);
          else replica.applySnapshot(updates, 'update2', false);
          replica.lastTxnId = isUuid(lastId) ? lastId : undefined;
        } else if (method === 'monitor_cond') {
          const result = await this.#request(session, method, [this.database, base, replica.requests(true)]);
          this.#method = method;
          this.#filterLocally = false;
          replica.lastTxnId = undefined;
          replica.applySnapshot(result, 'update2', false);
        } else {
          const result = await this.#request(session, method, [this.database, base, replica.requests(false)]);
          this.#method = method;
          this.#filterLocally = true;
          replica.lastTxnId = undefined;
          replica.applySnapshot(result, 'update', true);
        }
        reg.acked = wantedJson;
        // Conditions changed while this request was on its way: send them now.
        await this.#syncWhere(reg);
        return;
      } catch (err) {
        if (err instanceof RpcError && err.unknownMethod && method !== 'monitor') continue;
        throw err;
      }
    }
  }

  async #restartMonitor(session: JsonRpcSession, reg: Registration): Promise<void> {
    try {
      await this.#request(session, 'monitor_cancel', [reg.current]);
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
    }
    reg.replica.lastTxnId = undefined;
    await this.#startMonitor(session, reg);
  }

  #onNotification(session: JsonRpcSession, method: string, params: unknown): void {
    if (session !== this.#session) return;
    const p = Array.isArray(params) ? params : [];
    switch (method) {
      case 'update':
      case 'update2':
      case 'update3': {
        const id = p[0];
        if (Array.isArray(id) && id[0] === 'nmp-server') {
          this.#serverUpdate(session, p[1]);
          return;
        }
        const reg = this.#registrations.find((r) => r.session === session && r.ids.has(id as string));
        if (!reg) {
          this.#log.debug({ code: 'OVSDB_UNKNOWN_MONITOR', method }, 'update for an unknown monitor');
          return;
        }
        if (method === 'update3') {
          reg.replica.applyUpdate(p[2], 'update2', false);
          if (isUuid(p[1])) reg.replica.lastTxnId = p[1];
        } else {
          reg.replica.applyUpdate(p[1], method === 'update' ? 'update' : 'update2', this.#filterLocally);
        }
        if (reg.replica.diverged) {
          reg.replica.lastTxnId = undefined;
          this.#drop(session, new OvsdbError('OVSDB_ERR_PROTOCOL', 'replica diverged; reloading'));
        }
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

  /** The _Server row of our database changed while connected. */
  #serverUpdate(session: JsonRpcSession, updates: unknown): void {
    const u = (
      updates as {
        Database?: Record<
          string,
          { initial?: unknown; insert?: unknown; modify?: unknown; delete?: unknown }
        >;
      }
    )?.Database;
    if (!u || typeof u !== 'object') return;
    for (const change of Object.values(u)) {
      if (!change || typeof change !== 'object') continue;
      if ('delete' in change) {
        this.#drop(session, new OvsdbError('OVSDB_ERR_PROTOCOL', `${this.database} removed from the server`));
        return;
      }
    }
    // Modify diffs carry only changed columns; ask again rather than keep a copy of the row.
    this.#request(session, 'transact', [
      '_Server',
      {
        op: 'select',
        table: 'Database',
        where: [['name', '==', this.database]],
        columns: ['name', 'model', 'connected', 'leader', 'index', 'cid'],
      },
    ])
      .then((result) => {
        const rows = (Array.isArray(result) ? (result[0] as { rows?: unknown[] })?.rows : undefined) ?? [];
        const row = parseServerRow(rows[0]);
        if (row === undefined) return;
        try {
          this.#judgeServer(row, true);
        } catch (err) {
          this.#drop(session, err as OvsdbError);
        }
      })
      .catch(() => {});
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

function firstServerRow(updates: unknown): ServerRow | undefined {
  const rows = (updates as { Database?: Record<string, { initial?: unknown; insert?: unknown }> })?.Database;
  if (!rows || typeof rows !== 'object') return undefined;
  for (const r of Object.values(rows)) {
    const row = parseServerRow(r?.initial ?? r?.insert);
    if (row) return row;
  }
  return undefined;
}

function parseServerRow(json: unknown): ServerRow | undefined {
  if (!json || typeof json !== 'object') return undefined;
  const o = json as Record<string, unknown>;
  const index = Array.isArray(o.index) && o.index[0] === 'set' ? (o.index[1] as unknown[])[0] : o.index;
  const cid = Array.isArray(o.cid) && o.cid[0] === 'uuid' ? o.cid[1] : undefined;
  return {
    model: typeof o.model === 'string' ? o.model : 'standalone',
    // Omitted columns are the defaults: false.
    connected: o.connected === true,
    leader: o.leader === true,
    index: typeof index === 'number' ? index : undefined,
    cid: typeof cid === 'string' ? cid : undefined,
  };
}
