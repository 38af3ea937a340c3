/*
 * Database schemas (RFC 7047 §3.2) as the client needs them: per table and column, the atomic key and value
 * types and the number of elements, which decide how values are decoded, what a row's defaults are, and how
 * an update2 diff applies. `_uuid` and `_version` are added to every table as the RFC defines them.
 */
import { OvsdbError } from './errors.js';

export type AtomicType = 'integer' | 'real' | 'boolean' | 'string' | 'uuid';

export interface BaseType {
  readonly type: AtomicType;
  /** uuid columns: the table referred to, and whether the reference is weak. */
  readonly refTable?: string;
  readonly refType?: 'strong' | 'weak';
}

export interface ColumnType {
  readonly key: BaseType;
  /** Present for maps. */
  readonly value?: BaseType;
  readonly min: number;
  /** Infinity for "unlimited". */
  readonly max: number;
}

export interface ColumnSchema {
  readonly name: string;
  readonly type: ColumnType;
  readonly ephemeral: boolean;
  readonly mutable: boolean;
}

export interface TableSchema {
  readonly name: string;
  readonly columns: ReadonlyMap<string, ColumnSchema>;
  readonly isRoot: boolean;
  readonly indexes: readonly (readonly string[])[];
}

export interface DatabaseSchema {
  readonly name: string;
  readonly version: string;
  readonly tables: ReadonlyMap<string, TableSchema>;
}

const ATOMIC: readonly AtomicType[] = ['integer', 'real', 'boolean', 'string', 'uuid'];

/** True for a column holding exactly one atom (not a set or map). */
export function isScalar(type: ColumnType): boolean {
  return type.value === undefined && type.min === 1 && type.max === 1;
}

/** True for map columns. */
export function isMap(type: ColumnType): boolean {
  return type.value !== undefined;
}

function bad(where: string, why: string): never {
  throw new OvsdbError('OVSDB_ERR_SCHEMA', `schema: ${where}: ${why}`);
}

function parseBase(json: unknown, where: string): BaseType {
  if (typeof json === 'string') {
    if (!(ATOMIC as readonly string[]).includes(json))
      bad(where, `unknown atomic type ${JSON.stringify(json)}`);
    return { type: json as AtomicType };
  }
  if (json === null || typeof json !== 'object') bad(where, 'base type must be a string or an object');
  const o = json as Record<string, unknown>;
  if (typeof o.type !== 'string' || !(ATOMIC as readonly string[]).includes(o.type))
    bad(where, `unknown atomic type ${JSON.stringify(o.type)}`);
  const out: { type: AtomicType; refTable?: string; refType?: 'strong' | 'weak' } = {
    type: o.type as AtomicType,
  };
  if (typeof o.refTable === 'string') out.refTable = o.refTable;
  if (o.refType === 'weak' || o.refType === 'strong') out.refType = o.refType;
  return out;
}

export function parseColumnType(json: unknown, where: string): ColumnType {
  if (typeof json === 'string') return { key: parseBase(json, where), min: 1, max: 1 };
  if (json === null || typeof json !== 'object') bad(where, 'column type must be a string or an object');
  const o = json as Record<string, unknown>;
  const key = parseBase(o.key, `${where}.key`);
  const value = o.value === undefined ? undefined : parseBase(o.value, `${where}.value`);
  const min = o.min === undefined ? 1 : o.min;
  const max = o.max === undefined ? 1 : o.max === 'unlimited' ? Number.POSITIVE_INFINITY : o.max;
  if (typeof min !== 'number' || !Number.isInteger(min) || min < 0 || min > 1)
    bad(where, 'min must be 0 or 1');
  if (typeof max !== 'number' || (Number.isFinite(max) && (!Number.isInteger(max) || max < 1)))
    bad(where, 'max must be a positive integer or "unlimited"');
  if (min > max) bad(where, 'min is greater than max');
  return value ? { key, value, min, max } : { key, min, max };
}

/** Parse the result of get_schema. Throws OvsdbError(OVSDB_ERR_SCHEMA) on anything malformed. */
export function parseSchema(json: unknown): DatabaseSchema {
  if (json === null || typeof json !== 'object') bad('root', 'not an object');
  const o = json as Record<string, unknown>;
  if (typeof o.name !== 'string') bad('root', 'missing name');
  const tablesJson = o.tables;
  if (tablesJson === null || typeof tablesJson !== 'object') bad(o.name, 'missing tables');
  const tables = new Map<string, TableSchema>();
  for (const [tableName, tj] of Object.entries(tablesJson as Record<string, unknown>)) {
    if (tj === null || typeof tj !== 'object') bad(tableName, 'table is not an object');
    const t = tj as Record<string, unknown>;
    const columnsJson = t.columns;
    if (columnsJson === null || typeof columnsJson !== 'object') bad(tableName, 'missing columns');
    const columns = new Map<string, ColumnSchema>();
    columns.set('_uuid', {
      name: '_uuid',
      type: { key: { type: 'uuid' }, min: 1, max: 1 },
      ephemeral: false,
      mutable: false,
    });
    columns.set('_version', {
      name: '_version',
      type: { key: { type: 'uuid' }, min: 1, max: 1 },
      ephemeral: false,
      mutable: false,
    });
    for (const [columnName, cj] of Object.entries(columnsJson as Record<string, unknown>)) {
      if (cj === null || typeof cj !== 'object') bad(`${tableName}.${columnName}`, 'column is not an object');
      const c = cj as Record<string, unknown>;
      columns.set(columnName, {
        name: columnName,
        type: parseColumnType(c.type, `${tableName}.${columnName}`),
        ephemeral: c.ephemeral === true,
        mutable: c.mutable !== false,
      });
    }
    const indexes = Array.isArray(t.indexes)
      ? (t.indexes as unknown[]).filter(
          (ix): ix is string[] => Array.isArray(ix) && ix.every((x) => typeof x === 'string'),
        )
      : [];
    tables.set(tableName, { name: tableName, columns, isRoot: t.isRoot === true, indexes });
  }
  return { name: o.name, version: typeof o.version === 'string' ? o.version : '', tables };
}
