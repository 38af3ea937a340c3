/*
 * OVSDB values (RFC 7047 §5.1) between the wire and JavaScript, driven by the column's type:
 *
 *   atom     integer/real -> number, boolean -> boolean, string -> string, uuid ["uuid","…"] -> "…"
 *   scalar   a column of exactly one atom -> that atom
 *   set      any other non-map column (including "optional", 0..1) -> an array of atoms
 *   map      ["map", [[k, v], …]] -> a Map (never a plain object: keys come from the server)
 *
 * Decoding checks every atom against the schema, so a server sending the wrong shapes gets an error, not
 * a row with surprises in it. applyDiff implements the update2 "modify" rules of ovsdb-server(7) §4.1.14:
 * a column of at most one element takes the new value; a set toggles the listed elements; a map deletes a
 * listed pair whose value it holds, and otherwise sets the key to the listed value.
 */
import { OvsdbError } from './errors.js';
import type { BaseType, ColumnType } from './schema.js';

export type Atom = string | number | boolean;
export type Datum = Atom | readonly Atom[] | ReadonlyMap<Atom, Atom>;

/** A row of a replica: `_uuid` plus the monitored columns, decoded. Rows are frozen; changes make new rows. */
export interface Row {
  readonly _uuid: string;
  readonly [column: string]: Datum;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

export function isUuid(text: unknown): text is string {
  return typeof text === 'string' && UUID_RE.test(text);
}

function bad(why: string): never {
  throw new OvsdbError('OVSDB_ERR_DATA', why);
}

export function decodeAtom(base: BaseType, json: unknown): Atom {
  switch (base.type) {
    case 'integer':
      if (typeof json === 'number' && Number.isInteger(json)) return json;
      return bad(`expected an integer, got ${preview(json)}`);
    case 'real':
      if (typeof json === 'number') return json;
      return bad(`expected a real, got ${preview(json)}`);
    case 'boolean':
      if (typeof json === 'boolean') return json;
      return bad(`expected a boolean, got ${preview(json)}`);
    case 'string':
      if (typeof json === 'string') return json;
      return bad(`expected a string, got ${preview(json)}`);
    case 'uuid':
      if (Array.isArray(json) && json.length === 2 && json[0] === 'uuid' && isUuid(json[1]))
        return (json[1] as string).toLowerCase();
      return bad(`expected ["uuid", <uuid>], got ${preview(json)}`);
  }
}

/** Decode a column value; throws OvsdbError(OVSDB_ERR_DATA) when it does not fit the type. */
export function decodeDatum(type: ColumnType, json: unknown): Datum {
  if (type.value !== undefined) {
    if (!Array.isArray(json) || json.length !== 2 || json[0] !== 'map' || !Array.isArray(json[1]))
      return bad(`expected ["map", [...]], got ${preview(json)}`);
    const out = new Map<Atom, Atom>();
    for (const pair of json[1] as unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2)
        return bad(`map pair is not [key, value]: ${preview(pair)}`);
      out.set(decodeAtom(type.key, pair[0]), decodeAtom(type.value, pair[1]));
    }
    return out;
  }
  let atoms: Atom[];
  if (Array.isArray(json) && json[0] === 'set') {
    if (json.length !== 2 || !Array.isArray(json[1])) return bad(`malformed set ${preview(json)}`);
    atoms = (json[1] as unknown[]).map((a) => decodeAtom(type.key, a));
  } else atoms = [decodeAtom(type.key, json)];
  if (type.min === 1 && type.max === 1) {
    if (atoms.length !== 1) return bad(`expected one value, got ${atoms.length}`);
    return atoms[0]!;
  }
  return atoms;
}

/**
 * Decode a map column keeping only the keys in `keep` (the rest is skipped unread: a replica that needs
 * two keys of a ten-key external_ids should not build ten). Throws like decodeDatum on malformed input.
 */
export function decodeMapKeeping(type: ColumnType, json: unknown, keep: ReadonlySet<Atom>): Map<Atom, Atom> {
  if (type.value === undefined) return bad('not a map column');
  if (!Array.isArray(json) || json.length !== 2 || json[0] !== 'map' || !Array.isArray(json[1]))
    return bad(`expected ["map", [...]], got ${preview(json)}`);
  const out = new Map<Atom, Atom>();
  for (const pair of json[1] as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2)
      return bad(`map pair is not [key, value]: ${preview(pair)}`);
    const k = decodeAtom(type.key, pair[0]);
    if (keep.has(k)) out.set(k, decodeAtom(type.value, pair[1]));
  }
  return out;
}

export function defaultAtom(base: BaseType): Atom {
  switch (base.type) {
    case 'integer':
    case 'real':
      return 0;
    case 'boolean':
      return false;
    case 'string':
      return '';
    case 'uuid':
      return ZERO_UUID;
  }
}

/** The value a column has when a row omits it (initial and insert updates leave defaults out). */
export function defaultDatum(type: ColumnType): Datum {
  if (type.value !== undefined) return new Map();
  if (type.min === 0) return [];
  return defaultAtom(type.key);
}

/** Apply an update2 "modify" diff to the current value (see the top of this file). */
export function applyDiff(type: ColumnType, current: Datum, diffJson: unknown): Datum {
  if (type.max === 1) return decodeDatum(type, diffJson);
  const diff = decodeDatum(type, diffJson);
  if (type.value !== undefined) {
    const out = new Map(current as ReadonlyMap<Atom, Atom>);
    for (const [k, v] of diff as ReadonlyMap<Atom, Atom>) {
      if (out.has(k) && out.get(k) === v) out.delete(k);
      else out.set(k, v);
    }
    return out;
  }
  const out = new Set(current as readonly Atom[]);
  for (const a of diff as readonly Atom[]) {
    if (out.has(a)) out.delete(a);
    else out.add(a);
  }
  return [...out];
}

// --- Encoding (for transact) -------------------------------------------------------------------------------

/** `["uuid", id]`: a reference to an existing row. */
export function uuidAtom(id: string): ['uuid', string] {
  return ['uuid', id];
}

/** `["named-uuid", name]`: a row inserted earlier in the same transaction. */
export function namedUuid(name: string): ['named-uuid', string] {
  return ['named-uuid', name];
}

/** `["set", [...]]` of already-encoded atoms. */
export function setOf(atoms: readonly unknown[]): ['set', unknown[]] {
  return ['set', [...atoms]];
}

/** `["map", [[k, v], ...]]` of string keys and values (the common external_ids shape). */
export function mapOf(
  entries: Iterable<readonly [string, string]> | Readonly<Record<string, string>>,
): ['map', [string, string][]] {
  const pairs: [string, string][] = [];
  const iter =
    Symbol.iterator in (entries as object)
      ? (entries as Iterable<readonly [string, string]>)
      : Object.entries(entries as Record<string, string>);
  for (const [k, v] of iter) pairs.push([k, v]);
  return ['map', pairs];
}

export function encodeAtom(base: BaseType, value: Atom): unknown {
  return base.type === 'uuid' ? ['uuid', value] : value;
}

/** Encode a decoded value back into its wire form (the inverse of decodeDatum). */
export function encodeDatum(type: ColumnType, value: Datum): unknown {
  if (type.value !== undefined) {
    const pairs: unknown[] = [];
    for (const [k, v] of value as ReadonlyMap<Atom, Atom>)
      pairs.push([encodeAtom(type.key, k), encodeAtom(type.value, v)]);
    return ['map', pairs];
  }
  if (Array.isArray(value)) return ['set', (value as Atom[]).map((a) => encodeAtom(type.key, a))];
  return encodeAtom(type.key, value as Atom);
}

function preview(json: unknown): string {
  const text = JSON.stringify(json);
  return text === undefined ? String(json) : text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
