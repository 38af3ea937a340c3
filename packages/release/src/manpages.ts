/*
 * Man pages, generated: each program's own `--help` (and its commands' `--help`), which yargs builds from
 * the option schema and the help strings, turned into roff; then a CONFIGURATION section straight from
 * the schema (INI section, name, type, default, flag, environment variable, what it does) and what
 * every page has (exit status, files, see also). Nothing here is written by hand twice: a changed
 * option changes the page.
 */
import { envName, flagName, type OptionDef, type Schema } from '@nmp/common';
import type { ProgramSpec } from './layout.js';

export interface HelpSection {
  readonly title: string;
  /** `term  description` lines (flags, commands, positionals). */
  readonly entries: readonly { readonly term: string; readonly text: string }[];
  /** Lines that are not entries. */
  readonly text: readonly string[];
}

export interface ParsedHelp {
  readonly usage: string;
  readonly description: readonly string[];
  readonly sections: readonly HelpSection[];
}

/** yargs' help as printed without a terminal (no wrapping): usage, paragraphs, then `Title:` sections. */
export function parseHelp(help: string): ParsedHelp {
  const lines = help.replace(/\s+$/, '').split('\n');
  const usage = (lines.shift() ?? '').trim();
  const description: string[] = [];
  const sections: { title: string; entries: { term: string; text: string }[]; text: string[] }[] = [];
  for (const line of lines) {
    const title = /^(\S.*):$/.exec(line);
    if (title) {
      sections.push({ title: title[1]!, entries: [], text: [] });
      continue;
    }
    const current = sections.at(-1);
    if (current === undefined) {
      if (line.trim() !== '') description.push(line.trim());
      continue;
    }
    const entry = /^\s+(\S.*?)(?:\s{2,}(\S.*))?$/.exec(line);
    if (entry) current.entries.push({ term: entry[1]!, text: entry[2] ?? '' });
    else if (line.trim() !== '') current.text.push(line.trim());
  }
  return { usage, description, sections };
}

/** Text for roff: backslashes and hyphens escaped, no line starting with a control character. */
export function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

const bold = (s: string) => `\\fB${roff(s)}\\fR`;

export interface SubcommandHelp {
  /** The command word (`dhcp`, `status`). */
  readonly name: string;
  readonly help: string;
}

export interface ManPageInput {
  readonly program: ProgramSpec;
  readonly version: string;
  /** YYYY-MM-DD (from SOURCE_DATE_EPOCH: the same input gives the same page). */
  readonly date: string;
  readonly help: string;
  readonly subcommands: readonly SubcommandHelp[];
  /** The options the program reads from its INI files. */
  readonly schema?: Schema;
  readonly files: readonly (readonly [path: string, what: string])[];
  readonly seeAlso: readonly string[];
}

function entries(section: HelpSection, skip: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (const e of section.entries) {
    if (skip.has(e.term)) continue;
    out.push('.TP', bold(e.term), e.text === '' ? '.br' : roff(e.text));
  }
  for (const t of section.text) out.push('.PP', roff(t));
  return out;
}

function typeOf(d: OptionDef): string {
  if (d.kind === 'enum') return (d.choices ?? []).join(' | ');
  const names = { string: 'string', int: 'integer', float: 'number', bool: 'boolean', list: 'list' } as const;
  const range =
    d.min !== undefined && d.max !== undefined
      ? ` ${d.min}..${d.max}`
      : d.min !== undefined
        ? ` >= ${d.min}`
        : d.max !== undefined
          ? ` <= ${d.max}`
          : '';
  return `${names[d.kind as keyof typeof names]}${range}`;
}

function configurationSection(schema: Schema): string[] {
  const out = [
    '.SH INI FILE OPTIONS',
    roff(
      'Options are read from the --config-file INI files (later files win), then from the environment, ' +
        'then from flags. Options in sections other than [DEFAULT] are written [section] name in the files.',
    ),
  ];
  const groups = new Map<string, OptionDef[]>();
  for (const d of Object.values(schema)) groups.set(d.group, [...(groups.get(d.group) ?? []), d]);
  for (const [group, defs] of groups) {
    out.push(`.SS [${roff(group)}]`);
    for (const d of defs) {
      const value = Array.isArray(d.default) ? d.default.join(', ') : String(d.default);
      const how = d.secret
        ? `Secret: never a flag or printed; from the file, ${envName(d)} or --${d.name.replace(/_/g, '-')}-file.`
        : `${flagName(d) ? `Flag --${flagName(d)}; ` : ''}environment ${envName(d)}.`;
      const help = d.help.endsWith('.') ? d.help : `${d.help}.`;
      out.push(
        '.TP',
        `${bold(d.name)} (${roff(typeOf(d))}, default ${d.secret || value === '' ? 'empty' : bold(value)})`,
        roff(`${help} ${how}`),
      );
    }
  }
  return out;
}

/** One man page (roff source). */
export function renderManPage(m: ManPageInput): string {
  const { program: p } = m;
  const top = parseHelp(m.help);
  const out = [
    `.\\" Generated by nmp's release builder from ${p.name} --help and its option schema; do not edit.`,
    `.TH ${p.name.toUpperCase().replace(/-/g, '\\-')} ${p.section} "${m.date}" "nmp ${roff(m.version)}" "nmp"`,
    '.SH NAME',
    `${roff(p.name)} \\- ${roff(p.summary)}`,
    '.SH SYNOPSIS',
    bold(top.usage),
    '.SH DESCRIPTION',
  ];
  for (const d of top.description) out.push(roff(d), '.PP');
  if (top.description.length > 0) out.pop();
  const topTerms = new Set<string>();
  for (const s of top.sections) {
    out.push(`.SH ${roff(s.title.toUpperCase())}`, ...entries(s));
    for (const e of s.entries) topTerms.add(e.term);
  }
  if (m.subcommands.length > 0) {
    out.push('.SH COMMAND DETAILS');
    for (const c of m.subcommands) {
      const sub = parseHelp(c.help);
      out.push(`.SS ${roff(c.name)}`, bold(sub.usage), '.PP');
      for (const d of sub.description) out.push(roff(d), '.PP');
      // The options every command shares are listed once above; here only what this command adds.
      for (const s of sub.sections) {
        const own = entries(s, topTerms);
        if (own.length > 0) out.push(`.TP`, `${roff(s.title)}:`, '.RS', ...own, '.RE');
      }
    }
  }
  if (m.schema) out.push(...configurationSection(m.schema));
  out.push(
    '.SH EXIT STATUS',
    '.TP',
    '0',
    'success.',
    '.TP',
    '1',
    roff('a run-time failure (the message says what failed).'),
    '.TP',
    '2',
    roff('a usage or configuration error: a one-line message, then nothing was started or changed.'),
    '.TP',
    '3',
    roff('status commands: something is not healthy.'),
  );
  if (m.files.length > 0) {
    out.push('.SH FILES');
    for (const [path, what] of m.files) out.push('.TP', bold(path), roff(what));
  }
  out.push(
    '.SH SEE ALSO',
    `${m.seeAlso.map((s) => roff(s)).join(', ')}`,
    '.PP',
    roff(
      'The documentation in /usr/share/doc/nmp/ (deployment.md.gz, configuration.md.gz, operations.md.gz).',
    ),
    '',
  );
  return out.join('\n');
}
