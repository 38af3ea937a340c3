/*
 * The monitors of one session (step 3 of client.ts's top comment): each registered replica loaded with the
 * best method the server has (monitor_cond_since, else monitor_cond, else monitor; the first the server
 * lacks is not asked again in this session), its conditions kept in step with the server's
 * (monitor_cond_change, or a reload where the server cannot change them), and the update notifications
 * routed to the replica they are for. A registration outlives sessions: the next session starts from what
 * its replica holds (with monitor_cond_since, only the transactions missed are sent).
 */

import { LogEvent } from '@nmp/common';
import type { OvsdbLogger } from './client.js';
import { isUuid, ZERO_UUID } from './data.js';
import { OvsdbError, RpcError } from './errors.js';
import type { JsonRpcSession } from './jsonrpc.js';
import { type MonitorSpec, Replica } from './replica.js';
import type { DatabaseSchema } from './schema.js';

export type MonitorMethod = 'monitor_cond_since' | 'monitor_cond' | 'monitor';

const METHODS: readonly MonitorMethod[] = ['monitor_cond_since', 'monitor_cond', 'monitor'];

/** One monitor, across sessions. */
export class Registration {
  readonly replica: Replica;
  /** Monitor ids this replica answers to (a condition change makes a new one). */
  ids = new Set<string>();
  current = '';
  generation = 0;
  /** Conditions the server acknowledged, per table (JSON, for comparison). */
  acked = new Map<string, string>();
  /** The session these ids belong to. */
  session: MonitorSession | undefined;
  /** Condition changes, one after the other. */
  changes: Promise<void> = Promise.resolve();

  constructor(spec: MonitorSpec) {
    this.replica = new Replica(spec);
  }
}

export interface MonitorSessionOptions {
  readonly database: string;
  readonly schema: DatabaseSchema;
  /** A request on this session (counted by the client). */
  readonly request: (method: string, params: unknown) => Promise<unknown>;
  /** A new monitor id, unique for the client. */
  readonly newMonitorId: () => string;
  readonly log: OvsdbLogger;
}

export class MonitorSession {
  readonly rpc: JsonRpcSession;
  readonly #o: MonitorSessionOptions;
  #method: MonitorMethod | undefined;
  #filterLocally = false;
  #ended = false;

  constructor(rpc: JsonRpcSession, options: MonitorSessionOptions) {
    this.rpc = rpc;
    this.#o = options;
  }

  /** The method the server answered with (undefined before the first monitor). */
  get method(): MonitorMethod | undefined {
    return this.#method;
  }

  /** The session is over: nothing more is sent on it. */
  end(): void {
    this.#ended = true;
  }

  /** Load the replica of `reg` on this session, and keep it current from now on. */
  async start(reg: Registration): Promise<void> {
    const { schema, database } = this.#o;
    const replica = reg.replica;
    replica.plan(schema);
    if (replica.missing.length > 0)
      this.#o.log.info(
        { code: LogEvent.OVSDB_SCHEMA_LACKS, missing: replica.missing },
        'the server schema lacks some monitored tables or columns',
      );
    const base = this.#o.newMonitorId();
    reg.generation = 0;
    reg.current = base;
    reg.ids = new Set([base]);
    reg.session = this;
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
          const result = await this.#o.request(method, [database, base, replica.requests(true), since]);
          if (!Array.isArray(result) || result.length !== 3 || typeof result[0] !== 'boolean')
            throw new OvsdbError('OVSDB_ERR_PROTOCOL', 'monitor_cond_since: malformed result');
          const [found, lastId, updates] = result as [boolean, unknown, unknown];
          this.#method = method;
          this.#filterLocally = false;
          if (found && since !== ZERO_UUID) replica.applyUpdate(updates, 'update2', false);
          else replica.applySnapshot(updates, 'update2', false);
          replica.lastTxnId = isUuid(lastId) ? lastId : undefined;
        } else if (method === 'monitor_cond') {
          const result = await this.#o.request(method, [database, base, replica.requests(true)]);
          this.#method = method;
          this.#filterLocally = false;
          replica.lastTxnId = undefined;
          replica.applySnapshot(result, 'update2', false);
        } else {
          const result = await this.#o.request(method, [database, base, replica.requests(false)]);
          this.#method = method;
          this.#filterLocally = true;
          replica.lastTxnId = undefined;
          replica.applySnapshot(result, 'update', true);
        }
        reg.acked = wantedJson;
        // Conditions changed while this request was on its way: send them now.
        await this.syncWhere(reg);
        return;
      } catch (err) {
        if (err instanceof RpcError && err.unknownMethod && method !== 'monitor') continue;
        throw err;
      }
    }
  }

  /** Tell the server about conditions wanted but not yet acknowledged (if `reg` is monitored on this session). */
  async syncWhere(reg: Registration): Promise<void> {
    if (reg.session !== this || this.#ended || this.rpc.closed) return;
    const replica = reg.replica;
    const stale = Object.keys(replica.spec).filter(
      (t) => replica.has(t) && reg.acked.get(t) !== JSON.stringify(replica.whereOf(t) ?? []),
    );
    if (stale.length === 0) return;
    if (this.#method === 'monitor') {
      // No conditions on the server: reload the monitor, filtering here.
      await this.#restart(reg);
      return;
    }
    const newId = `${reg.current.split('.')[0]}.${++reg.generation}`;
    const wanted = stale.map((t) => [t, JSON.stringify(replica.whereOf(t) ?? [])] as const);
    reg.ids.add(newId);
    const oldId = reg.current;
    try {
      await this.#o.request('monitor_cond_change', [oldId, newId, replica.conditionRequests(stale)]);
    } catch (err) {
      reg.ids.delete(newId);
      if (err instanceof RpcError) {
        // The server refused the change: reload, so that the copy matches what was asked.
        await this.#restart(reg);
        return;
      }
      throw err;
    }
    reg.current = newId;
    reg.ids.delete(oldId);
    for (const [t, w] of wanted) reg.acked.set(t, w);
    // Asked for again meanwhile: go on until the server has the latest.
    await this.syncWhere(reg);
  }

  /**
   * An update notification (update, update2, update3) for one of `registrations`: applied to its replica.
   * Returns why the session must be dropped (the replica diverged), if it must.
   */
  onUpdate(
    registrations: readonly Registration[],
    method: 'update' | 'update2' | 'update3',
    p: readonly unknown[],
  ): OvsdbError | undefined {
    const id = p[0];
    const reg = registrations.find((r) => r.session === this && r.ids.has(id as string));
    if (!reg) {
      this.#o.log.debug({ code: LogEvent.OVSDB_UNKNOWN_MONITOR, method }, 'update for an unknown monitor');
      return undefined;
    }
    if (method === 'update3') {
      reg.replica.applyUpdate(p[2], 'update2', false);
      if (isUuid(p[1])) reg.replica.lastTxnId = p[1];
    } else {
      reg.replica.applyUpdate(p[1], method === 'update' ? 'update' : 'update2', this.#filterLocally);
    }
    if (reg.replica.diverged) {
      reg.replica.lastTxnId = undefined;
      return new OvsdbError('OVSDB_ERR_PROTOCOL', 'replica diverged; reloading');
    }
    return undefined;
  }

  async #restart(reg: Registration): Promise<void> {
    try {
      await this.#o.request('monitor_cancel', [reg.current]);
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
    }
    reg.replica.lastTxnId = undefined;
    await this.start(reg);
  }
}
