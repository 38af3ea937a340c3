/*
 * An in-memory copy of the monitored part of a database, kept by one monitor of an OvsdbClient across
 * reconnections. Readers look rows up in plain Maps (no round trip); listeners get every change as
 * (table, uuid, old row, new row), in batches that are whole server transactions or whole resyncs.
 *
 * After a reconnection the copy is brought up to date without a gap: with monitor_cond_since only the
 * transactions missed are applied; otherwise (or when the server no longer has them) the fresh snapshot
 * replaces the copy and the listeners see exactly the difference, as inserts, updates and deletes. Until
 * then the old copy stays readable: a consumer may keep answering from it while the database is away.
 *
 * Rows are frozen objects; a change makes a new row, so a reader holding a row never sees it change.
 * A value that does not fit the schema is dropped with a warning (the column keeps its previous value) and
 * counted; a modify of a row the copy does not have means the copy diverged and asks for a full resync.
 */

import { LogEvent, type LogEventCode } from '@nmp/common';
import { type Condition, compileWhere, equalDatum } from './conditions.js';
import {
  type Atom,
  applyDiff,
  type Datum,
  decodeDatum,
  decodeMapKeeping,
  defaultDatum,
  type Row,
} from './data.js';
import { OvsdbError } from './errors.js';
import type { ColumnType, DatabaseSchema, TableSchema } from './schema.js';

export interface MonitorTable {
  /** Columns to replicate (default: every column of the table). Columns the server lacks are left out. */
  readonly columns?: readonly string[];
  /** monitor_cond conditions (ORed; default: every row). */
  readonly where?: readonly Condition[];
  /** Map columns of which only these keys are kept (a memory bound; diffs stay exact for those keys). */
  readonly mapKeys?: Readonly<Record<string, readonly string[]>>;
}

export type MonitorSpec = Readonly<Record<string, MonitorTable>>;

const UUID_KEY = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface RowChange {
  readonly table: string;
  readonly uuid: string;
  /** Absent for an insert. */
  readonly old: Row | undefined;
  /** Absent for a delete. */
  readonly new: Row | undefined;
}

/** 'snapshot': the copy was (re)loaded whole; 'update': a transaction (or several) of the server. */
export type ChangeKind = 'snapshot' | 'update';

export type ChangeListener = (changes: readonly RowChange[], kind: ChangeKind) => void;

/** `code` is one of LOG_EVENTS' OVSDB_REPLICA_ codes. */
export type ProblemListener = (problem: { readonly code: ReplicaProblem; readonly message: string }) => void;

export type ReplicaProblem = Extract<LogEventCode, `OVSDB_REPLICA_${string}`>;

/** Update formats: RFC 7047 `monitor` (old/new) or update2 (initial/insert/modify/delete). */
export type UpdateFormat = 'update' | 'update2';

interface Plan {
  readonly name: string;
  readonly schema: TableSchema;
  /** Columns requested and known to the server, with their types. */
  readonly columns: ReadonlyMap<string, ColumnType>;
  readonly keep: ReadonlyMap<string, ReadonlySet<Atom>>;
}

export class Replica {
  readonly spec: MonitorSpec;
  readonly #tables = new Map<string, Map<string, Row>>();
  readonly #listeners = new Set<ChangeListener>();
  readonly #problemListeners = new Set<ProblemListener>();
  #plans = new Map<string, Plan>();
  /** Conditions wanted now, per table (start from the spec; setWhere changes them). */
  readonly #where = new Map<string, readonly Condition[] | undefined>();
  #synced = false;
  /** Last transaction id of the server included in the copy (monitor_cond_since), or undefined. */
  lastTxnId: string | undefined;
  /** Values dropped because they did not fit the schema. */
  dataErrors = 0;
  /** Set when the copy cannot be trusted any more; the client then reloads it whole. */
  diverged = false;
  /** Tables and columns asked for that the server's schema does not have. */
  missing: string[] = [];

  /** Created by OvsdbClient.monitor(). */
  constructor(spec: MonitorSpec) {
    this.spec = spec;
    for (const [table, t] of Object.entries(spec)) {
      this.#tables.set(table, new Map());
      this.#where.set(table, t.where);
    }
  }

  /** Whether the copy was loaded at least once (it may be stale while the client reconnects). */
  get synced(): boolean {
    return this.#synced;
  }

  /** Rows of a monitored table by uuid (empty for tables the server does not have). */
  table(name: string): ReadonlyMap<string, Row> {
    const t = this.#tables.get(name);
    if (!t) throw new OvsdbError('OVSDB_ERR_SCHEMA', `table ${name} is not monitored`);
    return t;
  }

  /** Whether the server's schema has this monitored table (and column). */
  has(table: string, column?: string): boolean {
    const plan = this.#plans.get(table);
    return plan !== undefined && (column === undefined || plan.columns.has(column));
  }

  /** Listen to changes; returns the function that stops listening. */
  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onProblem(listener: ProblemListener): () => void {
    this.#problemListeners.add(listener);
    return () => this.#problemListeners.delete(listener);
  }

  /** The conditions currently wanted for a table. */
  whereOf(table: string): readonly Condition[] | undefined {
    return this.#where.get(table);
  }

  // --- Used by the client ----------------------------------------------------------------------------------

  /** Fix the plan against the server's schema; returns the monitor requests for `method`. */
  plan(schema: DatabaseSchema): void {
    const plans = new Map<string, Plan>();
    const missing: string[] = [];
    for (const [name, t] of Object.entries(this.spec)) {
      const ts = schema.tables.get(name);
      if (!ts) {
        missing.push(name);
        continue;
      }
      const columns = new Map<string, ColumnType>();
      const wanted = t.columns ?? [...ts.columns.keys()].filter((c) => c !== '_uuid' && c !== '_version');
      for (const c of wanted) {
        const cs = ts.columns.get(c);
        if (cs) columns.set(c, cs.type);
        else missing.push(`${name}.${c}`);
      }
      const keep = new Map<string, ReadonlySet<Atom>>();
      for (const [c, keys] of Object.entries(t.mapKeys ?? {})) keep.set(c, new Set(keys));
      plans.set(name, { name, schema: ts, columns, keep });
    }
    this.#plans = plans;
    this.missing = missing;
  }

  /** Requests for monitor (`conditional` false) or monitor_cond/monitor_cond_since (true). */
  requests(conditional: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const plan of this.#plans.values()) {
      const columns = [...plan.columns.keys()];
      if (!conditional) {
        out[plan.name] = { columns };
        continue;
      }
      const where = this.#serverWhere(plan);
      out[plan.name] = [where === undefined ? { columns } : { columns, where }];
    }
    return out;
  }

  /**
   * The wanted conditions as the server can take them: a condition on a column its schema lacks could
   * never hold (and would fail the whole request), so it is left out; if none is left, nothing matches.
   */
  #serverWhere(plan: Plan): readonly Condition[] | undefined {
    const where = this.#where.get(plan.name);
    if (where === undefined || where.length === 0) return where;
    const usable = where.filter((c) => typeof c === 'boolean' || plan.schema.columns.has(c[0]));
    return usable.length > 0 ? usable : [false];
  }

  /** Conditions per table as monitor_cond_change takes them. */
  conditionRequests(tables: readonly string[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const t of tables) {
      const plan = this.#plans.get(t);
      if (plan) out[t] = [{ where: this.#serverWhere(plan) ?? [] }];
    }
    return out;
  }

  /** Record new wanted conditions (the client sends them). */
  setWantedWhere(table: string, where: readonly Condition[] | undefined): void {
    if (!this.#tables.has(table)) throw new OvsdbError('OVSDB_ERR_SCHEMA', `table ${table} is not monitored`);
    this.#where.set(table, where);
  }

  /**
   * Load a whole snapshot (the reply to monitor / monitor_cond, or to monitor_cond_since when the server
   * no longer had our transaction): rows not in it are deleted. `filter`: apply the conditions here (the
   * server could not).
   */
  applySnapshot(json: unknown, format: UpdateFormat, filter: boolean): void {
    const fresh = new Map<string, Map<string, Row>>();
    for (const name of this.#plans.keys()) fresh.set(name, new Map());
    this.#forEachRowUpdate(json, (plan, uuid, update) => {
      const body = format === 'update' ? update.new : (update.initial ?? update.insert);
      if (body === undefined || body === null) return;
      const row = this.#decodeRow(plan, uuid, body, undefined);
      if (row) fresh.get(plan.name)!.set(uuid, row);
    });
    const changes: RowChange[] = [];
    for (const [name, rows] of fresh) {
      const current = this.#tables.get(name)!;
      const plan = this.#plans.get(name)!;
      const test = filter ? compileWhere(plan.schema, this.#serverWhere(plan)) : undefined;
      for (const [uuid, row] of rows) {
        if (test && !test(row)) {
          rows.delete(uuid);
          continue;
        }
        const old = current.get(uuid);
        if (old === undefined || !sameRow(old, row)) changes.push({ table: name, uuid, old, new: row });
      }
      for (const [uuid, old] of current)
        if (!rows.has(uuid)) changes.push({ table: name, uuid, old, new: undefined });
      this.#tables.set(name, rows);
    }
    // Tables the server lacks stay empty.
    for (const name of this.#tables.keys()) if (!this.#plans.has(name)) this.#tables.set(name, new Map());
    this.#synced = true;
    this.diverged = false;
    this.#emit(changes, 'snapshot');
  }

  /** Apply an update notification (or the incremental reply of monitor_cond_since). */
  applyUpdate(json: unknown, format: UpdateFormat, filter: boolean): void {
    const changes: RowChange[] = [];
    this.#forEachRowUpdate(json, (plan, uuid, update) => {
      const table = this.#tables.get(plan.name)!;
      const old = table.get(uuid);
      let row: Row | undefined;
      if (format === 'update') {
        if (update.new === undefined || update.new === null) row = undefined;
        else row = this.#decodeRow(plan, uuid, update.new, old);
        if (update.new !== undefined && update.new !== null && row === undefined) return;
      } else if (update.delete !== undefined) {
        row = undefined;
      } else if (update.modify !== undefined) {
        if (old === undefined) {
          // Only a full reload can fix a copy that misses a row the server changes.
          this.diverged = true;
          this.#problem(
            LogEvent.OVSDB_REPLICA_DIVERGED,
            `modify of ${plan.name} row ${uuid} that the copy does not have`,
          );
          return;
        }
        row = this.#diffRow(plan, old, update.modify);
      } else if (update.insert !== undefined || update.initial !== undefined) {
        row = this.#decodeRow(plan, uuid, update.insert ?? update.initial, undefined);
        if (row === undefined) return;
      } else {
        this.#problem(LogEvent.OVSDB_REPLICA_BAD_UPDATE, `${plan.name} row ${uuid}: unknown row update`);
        return;
      }
      if (row !== undefined && filter) {
        const test = compileWhere(plan.schema, this.#serverWhere(plan));
        if (!test(row)) row = undefined;
      }
      if (row === undefined) {
        if (old === undefined) return;
        table.delete(uuid);
      } else table.set(uuid, row);
      changes.push({ table: plan.name, uuid, old, new: row });
    });
    if (changes.length > 0) this.#emit(changes, 'update');
  }

  #forEachRowUpdate(
    json: unknown,
    fn: (plan: Plan, uuid: string, update: Record<string, unknown>) => void,
  ): void {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      if (json !== null && json !== undefined)
        this.#problem(LogEvent.OVSDB_REPLICA_BAD_UPDATE, 'table-updates is not an object');
      return;
    }
    for (const [tableName, rows] of Object.entries(json as Record<string, unknown>)) {
      const plan = this.#plans.get(tableName);
      if (!plan) {
        this.#problem(
          LogEvent.OVSDB_REPLICA_BAD_UPDATE,
          `update for table ${tableName.slice(0, 64)} not monitored`,
        );
        continue;
      }
      if (rows === null || typeof rows !== 'object' || Array.isArray(rows)) {
        this.#problem(LogEvent.OVSDB_REPLICA_BAD_UPDATE, `${tableName}: table-update is not an object`);
        continue;
      }
      const byUuid = rows as Record<string, unknown>;
      // for-in, not Object.entries: a snapshot has 100,000 rows, and entries() would allocate a pair each.
      for (const uuid in byUuid) {
        if (!Object.hasOwn(byUuid, uuid)) continue;
        const update = byUuid[uuid];
        if (!UUID_KEY.test(uuid)) {
          this.#problem(LogEvent.OVSDB_REPLICA_BAD_UPDATE, `${tableName}: row key is not a uuid`);
          continue;
        }
        if (update === null || typeof update !== 'object' || Array.isArray(update)) {
          this.#problem(
            LogEvent.OVSDB_REPLICA_BAD_UPDATE,
            `${tableName} row ${uuid}: row-update is not an object`,
          );
          continue;
        }
        fn(plan, uuid, update as Record<string, unknown>);
      }
    }
  }

  /** A full row from its wire form: monitored columns, defaults for those left out, `base` for the rest. */
  #decodeRow(plan: Plan, uuid: string, body: unknown, base: Row | undefined): Row | undefined {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      this.#problem(LogEvent.OVSDB_REPLICA_BAD_UPDATE, `${plan.name} row ${uuid}: row is not an object`);
      return undefined;
    }
    const wire = body as Record<string, unknown>;
    const row: Record<string, Datum> = { _uuid: uuid };
    for (const [column, type] of plan.columns) {
      const json = wire[column];
      let value: Datum | undefined;
      if (json !== undefined) {
        try {
          const keep = plan.keep.get(column);
          value = keep === undefined ? decodeDatum(type, json) : decodeMapKeeping(type, json, keep);
        } catch (err) {
          this.dataErrors++;
          this.#problem(
            LogEvent.OVSDB_REPLICA_BAD_VALUE,
            `${plan.name}.${column} of ${uuid}: ${(err as Error).message}`,
          );
        }
      }
      value ??= base?.[column] ?? defaultDatum(type);
      row[column] = value;
    }
    return Object.freeze(row) as Row;
  }

  #diffRow(plan: Plan, old: Row, diff: unknown): Row | undefined {
    if (diff === null || typeof diff !== 'object' || Array.isArray(diff)) {
      this.#problem(
        LogEvent.OVSDB_REPLICA_BAD_UPDATE,
        `${plan.name} row ${old._uuid}: modify is not an object`,
      );
      return old;
    }
    const row: Record<string, Datum> = { ...old };
    for (const [column, json] of Object.entries(diff as Record<string, unknown>)) {
      const type = plan.columns.get(column);
      if (!type) continue; // not monitored (or unknown): nothing to apply
      try {
        row[column] = this.#trim(plan, column, applyDiff(type, old[column] ?? defaultDatum(type), json));
      } catch (err) {
        this.dataErrors++;
        this.#problem(
          LogEvent.OVSDB_REPLICA_BAD_VALUE,
          `${plan.name}.${column} of ${old._uuid}: ${(err as Error).message}`,
        );
      }
    }
    return Object.freeze(row) as Row;
  }

  #trim(plan: Plan, column: string, value: Datum): Datum {
    const keep = plan.keep.get(column);
    if (keep === undefined || !(value instanceof Map)) return value;
    let all = true;
    for (const k of value.keys())
      if (!keep.has(k)) {
        all = false;
        break;
      }
    if (all) return value;
    const out = new Map<Atom, Atom>();
    for (const [k, v] of value) if (keep.has(k)) out.set(k, v);
    return out;
  }

  #emit(changes: readonly RowChange[], kind: ChangeKind): void {
    for (const l of this.#listeners) {
      try {
        l(changes, kind);
      } catch (err) {
        this.#problem(
          LogEvent.OVSDB_REPLICA_LISTENER_FAILED,
          `change listener threw: ${(err as Error).message}`,
        );
      }
    }
  }

  #problem(code: ReplicaProblem, message: string): void {
    for (const l of this.#problemListeners) {
      try {
        l({ code, message });
      } catch {
        // a broken problem listener has nobody left to tell
      }
    }
  }
}

function sameRow(a: Row, b: Row): boolean {
  for (const k of Object.keys(b)) if (!equalDatum(a[k], b[k])) return false;
  return Object.keys(a).length === Object.keys(b).length;
}
