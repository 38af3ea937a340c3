/*
 * JSON text exactly as Nova writes it (oslo jsonutils -> Python's json.dumps with default arguments):
 * `", "` and `": "` separators, keys in insertion order, and ensure_ascii, so every character outside
 * printable ASCII (0x20-0x7e) is a `\uXXXX` escape (lower-case hex, surrogate pairs for astral
 * characters). Clients that hash or diff documents see the same bytes as from the real service.
 */

const SHORT_ESCAPES: Readonly<Record<number, string>> = {
  34: '\\"',
  92: '\\\\',
  10: '\\n',
  13: '\\r',
  9: '\\t',
  8: '\\b',
  12: '\\f',
};

function pythonString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    out += SHORT_ESCAPES[c] ?? `\\u${c.toString(16).padStart(4, '0')}`;
    start = i + 1;
  }
  return `${out}${s.slice(start)}"`;
}

function pythonNumber(n: number): string {
  if (!Number.isFinite(n)) {
    // Python writes these non-standard tokens; JSON input can never hold them, but keep the mapping total.
    return Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity';
  }
  return String(n);
}

/** Serialise a JSON value the way Python's `json.dumps(value)` does. */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return pythonString(value);
    case 'number':
      return pythonNumber(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
      const parts: string[] = [];
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        parts.push(`${pythonString(k)}: ${pythonJsonDumps(v)}`);
      }
      return `{${parts.join(', ')}}`;
    }
    default:
      throw new TypeError(`cannot serialise a ${typeof value} as JSON`);
  }
}
