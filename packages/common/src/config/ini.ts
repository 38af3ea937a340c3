/*
 * Reader for oslo.config-style INI files, so that neutron's metadata_agent.ini works as it is. It follows
 * oslo_config/iniparser.py line by line, quirks included, because an existing file means what oslo made of
 * it:
 * - `[section]` headers; `key = value`, `key=value` or `key: value` (the first `=` or `:` splits).
 * - `#` and `;` start a comment only at the start of a line. Inside a value they are part of it
 *   (`password = abc#123` is `abc#123`, and `debug = true  # note` is not a boolean).
 * - A line starting with a space or a tab continues the previous value (joined with a newline), even if
 *   it looks like a comment; a blank line ends the value.
 * - Surrounding spaces are stripped; a first-line value wrapped in matching quotes loses them.
 * - Repeated keys: every occurrence is returned in order; the loader keeps the last, as oslo does for
 *   single-valued options.
 * Interpolation of `$name` happens later, once every source is merged (see load.ts), because it refers to
 * effective values.
 */
import type { ProgramErrorCode } from '../errors.js';

export interface IniEntry {
  readonly section: string;
  readonly key: string;
  readonly value: string;
  readonly file: string;
  readonly line: number;
}

export class IniSyntaxError extends Error {
  readonly code = 'NMP_ERR_INI_SYNTAX' satisfies ProgramErrorCode;
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
    this.name = 'IniSyntaxError';
  }
}

interface Pending {
  readonly section: string;
  readonly key: string;
  readonly parts: string[];
  readonly line: number;
}

/** Parse one file's text into entries in file order. Section names are kept as written ("DEFAULT" included). */
export function parseIni(text: string, file = '<string>'): IniEntry[] {
  const entries: IniEntry[] = [];
  const lines = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split(/\r?\n|\r/);
  let section: string | undefined;
  let current: Pending | undefined;
  const flush = () => {
    if (current) {
      entries.push({
        section: current.section,
        key: current.key,
        // `key =` followed by indented lines: the value starts on the next line.
        value: (current.parts.length > 1 && current.parts[0] === ''
          ? current.parts.slice(1)
          : current.parts
        ).join('\n'),
        file,
        line: current.line,
      });
      current = undefined;
    }
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trimEnd();
    const lineNo = i + 1;
    if (raw === '') {
      // A blank line ends a continued value.
      flush();
      continue;
    }
    if (raw[0] === ' ' || raw[0] === '\t') {
      if (current) {
        current.parts.push(raw.trimStart());
        continue;
      }
      // oslo rejects this; an indented comment with nothing to continue is harmless, so let it pass.
      if (/^\s+[#;]/.test(raw)) continue;
      throw new IniSyntaxError(file, lineNo, 'indented line without an option to continue');
    }
    flush();
    if (raw[0] === '[') {
      if (!raw.endsWith(']'))
        throw new IniSyntaxError(file, lineNo, `section header without a closing ]: ${show(raw)}`);
      const name = raw.slice(1, -1).trim();
      if (name === '') throw new IniSyntaxError(file, lineNo, 'empty section name');
      section = name;
      continue;
    }
    if (raw[0] === '#' || raw[0] === ';') continue;
    const eq = raw.indexOf('=');
    const colon = raw.indexOf(':');
    if (eq < 0 && colon < 0)
      throw new IniSyntaxError(file, lineNo, `expected 'option = value', got ${show(raw)}`);
    const at = colon < 0 || (eq >= 0 && eq < colon) ? eq : colon;
    const key = raw.slice(0, at).trim();
    if (key === '') throw new IniSyntaxError(file, lineNo, `option name missing before '${raw[at]}'`);
    if (section === undefined) throw new IniSyntaxError(file, lineNo, 'option before the first [section]');
    current = { section, key, parts: [unquote(raw.slice(at + 1).trim())], line: lineNo };
  }
  flush();
  return entries;
}

/** oslo strips one pair of matching quotes around a first-line value. */
function unquote(v: string): string {
  if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v[v.length - 1] === v[0]) return v.slice(1, -1);
  return v;
}

function show(line: string): string {
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}...` : line);
}
