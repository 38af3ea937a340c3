/*
 * Which server to be on (steps 2 and the reconnection rule of client.ts's top comment): the remotes walked in
 * turn from a random one, the `_Server` database's row for our database judged at connection and whenever it
 * changes (a clustered member not connected to its cluster, behind what was already seen, or a follower when
 * the leader is preferred or required, is left), and the back-off after a round without a connection.
 * Requests go over the session the caller gives; this keeps only what outlives sessions: where the walk is,
 * the failures so far, and the cluster's id and highest raft index seen.
 */
import { OvsdbError, RpcError } from './errors.js';
import type { Remote } from './remote.js';

export type LeaderPreference = 'require' | 'prefer' | 'any';

/** A request on the current session. */
export type SessionRequest = (method: string, params: unknown) => Promise<unknown>;

export interface ServerChoiceOptions {
  readonly remotes: readonly Remote[];
  readonly database: string;
  /** Which cluster member to stay on (default 'prefer': the leader when one answers). */
  readonly leader?: LeaderPreference;
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
  readonly random: () => number;
}

/** A connection attempt that reached a server we chose not to stay on (not a failure of the server). */
export class SoftRefusal extends OvsdbError {}

interface ServerRow {
  readonly model: string;
  readonly connected: boolean;
  readonly leader: boolean;
  readonly index: number | undefined;
  readonly cid: string | undefined;
}

/** The monitor id of the `_Server` row, which update notifications carry. */
export const SERVER_MONITOR_ID = 'nmp-server';

const SERVER_COLUMNS = ['name', 'model', 'connected', 'leader', 'index', 'cid'];

export class ServerChoice {
  readonly remotes: readonly Remote[];
  readonly #o: ServerChoiceOptions;
  #next: number;
  /** Attempts that failed since the last success, and within the current round. */
  #failures = 0;
  #roundTried = 0;
  #maxIndex = 0;
  #cid: string | undefined;
  /** Set after a round without a connection: followers and members behind are accepted then. */
  #relaxed = false;

  constructor(options: ServerChoiceOptions) {
    this.#o = options;
    this.remotes = options.remotes;
    if (this.remotes.length === 0) throw new OvsdbError('OVSDB_ERR_REMOTE', 'no remote given');
    this.#next = Math.floor(options.random() * this.remotes.length);
  }

  /** The remote to try next. */
  next(): Remote {
    const remote = this.remotes[this.#next % this.remotes.length]!;
    this.#next = (this.#next + 1) % this.remotes.length;
    return remote;
  }

  /** A session reached the connected state: the next round may be choosy again. */
  connected(): void {
    this.#relaxed = false;
  }

  /**
   * An attempt ended, after `connectedMs` connected (undefined: it never was). How long to wait before the
   * next: 0 within a round, the back-off after a whole round failed. A session that ended right after it
   * began counts as a failure, or a flapping server is hammered.
   */
  ended(connectedMs: number | undefined): number {
    const min = this.#o.backoffMinMs ?? 1000;
    if (connectedMs !== undefined && connectedMs >= min * 5) {
      this.#failures = 0;
      this.#roundTried = 0;
      this.#relaxed = false;
      return 0;
    }
    this.#failures++;
    this.#roundTried++;
    if (this.#roundTried < this.remotes.length) return 0;
    // A whole round failed: wait before the next one, and be less choosy in it.
    this.#roundTried = 0;
    this.#relaxed = true;
    const rounds = Math.ceil(this.#failures / this.remotes.length);
    const max = this.#o.backoffMaxMs ?? 8000;
    return Math.min(max, min * 2 ** Math.min(rounds - 1, 20)) * (0.5 + this.#o.random() / 2);
  }

  /**
   * At connection: monitor our database's `_Server` row and judge it (SoftRefusal when this member is not one
   * to stay on), then ask to be told of schema changes instead of being dropped. A server without `_Server`
   * (OVS < 2.9) is taken as it is.
   */
  async check(request: SessionRequest): Promise<void> {
    let rows: unknown;
    try {
      rows = await request('monitor_cond', [
        '_Server',
        [SERVER_MONITOR_ID],
        { Database: [{ columns: SERVER_COLUMNS, where: [['name', '==', this.#o.database]] }] },
      ]);
    } catch (err) {
      if (err instanceof RpcError) return; // no _Server database (OVS < 2.9): nothing to check
      throw err;
    }
    const row = firstServerRow(rows);
    if (row === undefined)
      throw new OvsdbError('OVSDB_ERR_PROTOCOL', `the server does not serve ${this.#o.database}`);
    this.#judge(row, false);
    try {
      await request('set_db_change_aware', [true]);
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
    }
  }

  /** The `_Server` row changed while connected: `leave` is called with the reason when we should go. */
  recheck(request: SessionRequest, updates: unknown, leave: (why: OvsdbError) => void): void {
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
        leave(new OvsdbError('OVSDB_ERR_PROTOCOL', `${this.#o.database} removed from the server`));
        return;
      }
    }
    // Modify diffs carry only changed columns; ask again rather than keep a copy of the row.
    request('transact', [
      '_Server',
      {
        op: 'select',
        table: 'Database',
        where: [['name', '==', this.#o.database]],
        columns: SERVER_COLUMNS,
      },
    ])
      .then((result) => {
        const rows = (Array.isArray(result) ? (result[0] as { rows?: unknown[] })?.rows : undefined) ?? [];
        const row = parseServerRow(rows[0]);
        if (row === undefined) return;
        try {
          this.#judge(row, true);
        } catch (err) {
          leave(err as OvsdbError);
        }
      })
      .catch(() => {});
  }

  /** Throw SoftRefusal when this member is not one to stay on. */
  #judge(row: ServerRow, connected: boolean): void {
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
