/*
 * Monitor conditions (RFC 7047 §5.1 <condition>, ovsdb-server(7) §4.1.12) evaluated on decoded rows. The
 * server filters when it has monitor_cond; against a server that only has plain `monitor` the replica
 * filters with the same rules here, so what a replica holds does not depend on the server's version.
 */
import { type Atom, type Datum, decodeDatum } from './data.js';
import { OvsdbError } from './errors.js';
import type { ColumnType, TableSchema } from './schema.js';

/** `[column, function, value]` with the value in wire form, or a constant. */
export type Condition = readonly [string, string, unknown] | boolean;

type Test = (row: Readonly<Record<string, Datum>>) => boolean;

const FUNCTIONS = ['==', '!=', 'includes', 'excludes', '<', '<=', '>', '>='];

/** Compile a condition list (ORed, as monitor_cond applies them; empty = every row). */
export function compileWhere(table: TableSchema, where: readonly Condition[] | undefined): Test {
  if (where === undefined || where.length === 0) return () => true;
  const tests = where.map((c) => compileOne(table, c));
  return (row) => tests.some((t) => t(row));
}

function compileOne(table: TableSchema, c: Condition): Test {
  if (typeof c === 'boolean') return () => c;
  const [column, fn, value] = c;
  const col = table.columns.get(column);
  if (!col) throw new OvsdbError('OVSDB_ERR_SCHEMA', `condition on unknown column ${table.name}.${column}`);
  if (!FUNCTIONS.includes(fn)) throw new OvsdbError('OVSDB_ERR_SCHEMA', `unknown condition function '${fn}'`);
  // The argument may hold more (or fewer) elements than the column allows: decode it as an unbounded set.
  const argType: ColumnType =
    col.type.min === 1 && col.type.max === 1 && !['includes', 'excludes'].includes(fn)
      ? col.type
      : { ...col.type, min: 0, max: Number.POSITIVE_INFINITY };
  const arg = decodeDatum(argType, value);
  const scalar = col.type.min === 1 && col.type.max === 1 && col.type.value === undefined;
  switch (fn) {
    case '==':
      return (row) => equalDatum(asCollection(row[column], scalar), asCollection(arg, scalar));
    case '!=':
      return (row) => !equalDatum(asCollection(row[column], scalar), asCollection(arg, scalar));
    case 'includes':
      return (row) => contains(row[column], arg);
    case 'excludes':
      return (row) => disjoint(row[column], arg);
    default: {
      const n = Array.isArray(arg) ? (arg[0] as number) : (arg as number);
      const cmp =
        fn === '<'
          ? (x: number) => x < n
          : fn === '<='
            ? (x: number) => x <= n
            : fn === '>'
              ? (x: number) => x > n
              : (x: number) => x >= n;
      return (row) => {
        const v = row[column];
        const x = Array.isArray(v) ? v[0] : v;
        return typeof x === 'number' && cmp(x);
      };
    }
  }
}

function asCollection(d: Datum | undefined, scalar: boolean): Datum | undefined {
  return scalar && !Array.isArray(d) && !(d instanceof Map) && d !== undefined ? [d as Atom] : d;
}

/** RFC 7047: "excludes" holds when no element (pair, for maps) of the argument is in the value. */
function disjoint(haystack: Datum | undefined, needle: Datum): boolean {
  if (haystack === undefined) return true;
  if (haystack instanceof Map) {
    if (!(needle instanceof Map)) return true;
    for (const [k, v] of needle) if (haystack.has(k) && haystack.get(k) === v) return false;
    return true;
  }
  const have = new Set(Array.isArray(haystack) ? haystack : [haystack as Atom]);
  const want = needle instanceof Map ? [] : Array.isArray(needle) ? needle : [needle as Atom];
  return !(want as Atom[]).some((a) => have.has(a));
}

function contains(haystack: Datum | undefined, needle: Datum): boolean {
  if (haystack === undefined) return false;
  if (haystack instanceof Map) {
    if (!(needle instanceof Map)) return false;
    for (const [k, v] of needle) if (haystack.get(k) !== v) return false;
    return true;
  }
  const have = new Set(Array.isArray(haystack) ? haystack : [haystack as Atom]);
  const want = needle instanceof Map ? [] : Array.isArray(needle) ? needle : [needle as Atom];
  return (want as Atom[]).every((a) => have.has(a));
}

/** Value equality of two decoded data (sets compare as sets, maps by their pairs). */
export function equalDatum(a: Datum | undefined, b: Datum | undefined): boolean {
  if (a === b) return true;
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map) || !(b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || b.get(k) !== v) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    if (a.length === 1) return a[0] === b[0];
    const s = new Set(a);
    return (b as Atom[]).every((x) => s.has(x));
  }
  return false;
}
