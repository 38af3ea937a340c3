/*
 * Reader for oslo.config-style INI files, so that neutron's metadata_agent.ini works as it is:
 * [sections], `key = value` or `key: value`, `#`/`;` comment lines, values continued on indented lines,
 * repeated keys (the last wins, as oslo does for single-valued options). Interpolation of `$name` happens
 * later, once every source is merged (see load.ts), because it refers to effective values.
 */

export interface IniEntry {
  readonly section: string;
  readonly key: string;
  readonly value: string;
  readonly file: string;
  readonly line: number;
}

export class IniSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
    this.name = 'IniSyntaxError';
  }
}

/** Parse one file's text into entries in file order. Section names are kept as written ("DEFAULT" included). */
export function parseIni(text: string, file = '<string>'): IniEntry[] {
  const entries: IniEntry[] = [];
  const lines = text.split(/\r?\n/);
  let section: string | undefined;
  let current: { section: string; key: string; parts: string[]; line: number } | undefined;
  const flush = () => {
    if (current) {
      entries.push({
        section: current.section,
        key: current.key,
        value: current.parts.join('\n').trim(),
        file,
        line: current.line,
      });
      current = undefined;
    }
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    if (/^\s*$/.test(raw)) {
      // A blank line ends a continued value, as in oslo's parser.
      flush();
      continue;
    }
    if (/^\s*[#;]/.test(raw)) continue;
    if (/^[ \t]/.test(raw)) {
      if (!current) throw new IniSyntaxError(file, lineNo, 'indented line without an option to continue');
      current.parts.push(raw.trim());
      continue;
    }
    flush();
    const header = /^\[([^\]]*)\]\s*$/.exec(raw);
    if (header) {
      const name = header[1]!.trim();
      if (name === '') throw new IniSyntaxError(file, lineNo, 'empty section name');
      section = name;
      continue;
    }
    const kv = /^([^=:\s][^=:]*?)\s*[=:]\s?(.*)$/.exec(raw);
    if (!kv) throw new IniSyntaxError(file, lineNo, `cannot parse line: ${JSON.stringify(raw.slice(0, 80))}`);
    if (section === undefined) throw new IniSyntaxError(file, lineNo, 'option before the first [section]');
    current = { section, key: kv[1]!.trim(), parts: [kv[2]!], line: lineNo };
  }
  flush();
  return entries;
}
