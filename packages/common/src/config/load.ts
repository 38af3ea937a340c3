/*
 * Turns defaults, config files (--config-file, --config-dir), the environment and command-line flags into
 * one validated, frozen configuration object. Precedence: defaults < files (in order) < environment < flags.
 * Every rejected value names where it came from (file:line, section, option and value; or the flag; or
 * the variable) and never echoes a secret. Unknown options are reported, with a suggestion when one is
 * close; options listed as compatible (neutron's that have no effect here) are accepted quietly.
 *
 * Interpolation follows oslo.config: `$name`, `${name}` and `${group.name}` refer to effective values
 * (an option of the same group first, then of [DEFAULT]; an option we do not know but a file sets, such as
 * neutron's `log_dir`, also resolves); `$$` is a literal `$`. Values from files are interpolated, secrets
 * included, as oslo does; secrets from the environment or a `--<secret>-file` are taken literally.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import type { ProgramErrorCode } from '../errors.js';
import { type IniEntry, IniSyntaxError, parseIni } from './ini.js';
import type { CompatibilityList, ConfigOf, OptionDef, Schema } from './schema.js';

export class ConfigError extends Error {
  readonly code = 'NMP_ERR_CONFIG' satisfies ProgramErrorCode;
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

interface Origin {
  readonly kind: 'default' | 'file' | 'env' | 'flag';
  /** `file:line [section] key`, `environment NMP_X`, `--flag` or `default`. */
  readonly where: string;
}

interface RawValue {
  readonly text: string;
  readonly origin: Origin;
}

/** A file holding a secret that every user of the machine can read. */
export interface ExposedSecretFile {
  readonly file: string;
  /** The option whose secret it holds (`metadata_proxy_shared_secret`, `nova_client_priv_key`...). */
  readonly option: string;
  /** Permission bits, e.g. 0o644. */
  readonly mode: number;
}

export interface LoadedConfig<S extends Schema> {
  readonly config: ConfigOf<S>;
  /** Problems an operator must see (unknown options, deprecated names). */
  readonly warnings: readonly string[];
  /**
   * Secret files anyone can read: the `--<secret>-file` files read, and the files named by options marked
   * secretFile. Reported, not refused (as for config files): the program logs each with its own code.
   */
  readonly exposedSecretFiles: readonly ExposedSecretFile[];
  /** Where each option's effective value came from (for --print-config). */
  readonly origins: Readonly<Record<keyof S, string>>;
  /** Files read, in order. */
  readonly files: readonly string[];
  /** Options found in files that are accepted for compatibility and have no effect (`file:line: [s] k`). */
  readonly ignored: readonly string[];
}

export interface LoadOptions {
  /** Parsed flags (yargs output); keys are flag names as declared. */
  readonly flags: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly envPrefix?: string;
  readonly compat?: CompatibilityList;
}

/** Flag name of a schema option. */
export function flagName(d: OptionDef): string | undefined {
  return d.flag === false ? undefined : d.flag;
}

/** Environment variable that can set an option (secrets included). */
export function envName(d: OptionDef, prefix = 'NMP_'): string {
  const group = d.group === 'DEFAULT' ? '' : `${d.group.toUpperCase()}__`;
  return `${prefix}${group}${d.name.toUpperCase()}`;
}

/** Declare the schema's flags, plus --config-file, --config-dir and the `--<secret>-file` companions. */
export function addSchemaOptions<T>(y: Argv<T>, schema: Schema): Argv<T> {
  // No option takes `array: true`: yargs' arrays are greedy, so `--config-file F status` would read
  // `status` as a second file and lose the command. Repeating a flag still collects every value (yargs'
  // duplicate-arguments-array), which is the oslo way: `--config-file A --config-file B`.
  let out = y
    .option('config-file', {
      type: 'string',
      requiresArg: true,
      describe: 'oslo-style INI file (repeatable; later files win)',
      group: 'Configuration:',
    })
    .option('config-dir', {
      type: 'string',
      requiresArg: true,
      describe: 'directory whose *.conf files are read after --config-file, in name order',
      group: 'Configuration:',
    });
  for (const d of Object.values(schema)) {
    const group = d.group === 'DEFAULT' ? 'Options:' : `[${d.group}] options:`;
    if (d.secret) {
      out = out.option(`${d.name.replace(/_/g, '-')}-file`, {
        type: 'string',
        requiresArg: true,
        describe: `read ${d.name} from this file (secrets are never accepted as flags; or set ${envName(d)})`,
        group,
      });
      continue;
    }
    const flag = flagName(d);
    if (!flag) continue;
    // Choices are checked by the loader, not by yargs: its message for a bad one is two lines, ours is
    // one, in the same shape as every other bad value ("flag --x = 'v': expected one of a, b").
    const choices = d.choices ? ` [choices: ${d.choices.join(', ')}]` : '';
    const describe = `${d.help}${choices} [default: ${showDefault(d)}]`;
    if (d.kind === 'bool') out = out.option(flag, { type: 'boolean', describe, group });
    else if (d.kind === 'list') out = out.option(flag, { type: 'string', describe, group });
    else out = out.option(flag, { type: 'string', requiresArg: true, describe, group });
  }
  return out;
}

function showDefault(d: OptionDef): string {
  if (d.secret) return "''";
  if (Array.isArray(d.default)) return d.default.length ? d.default.join(',') : "''";
  return d.default === '' ? "''" : String(d.default);
}

/** Merge every source and validate. Throws ConfigError on the first bad value. */
export function loadConfig<S extends Schema>(schema: S, options: LoadOptions): LoadedConfig<S> {
  const env = options.env ?? {};
  const prefix = options.envPrefix ?? 'NMP_';
  const warnings: string[] = [];
  const ignored: string[] = [];
  const byIni = new Map<string, keyof S>(); // "group\0name" (group lower-cased) -> key
  const groups = new Set<string>(['default']);
  for (const [key, d] of Object.entries(schema)) {
    groups.add(d.group.toLowerCase());
    byIni.set(`${d.group.toLowerCase()}\0${d.name}`, key);
    for (const old of d.deprecatedNames ?? []) byIni.set(`${d.group.toLowerCase()}\0${old}`, key);
  }

  const exposedSecretFiles: ExposedSecretFile[] = [];
  const raw = new Map<keyof S, RawValue>();
  for (const [key, d] of Object.entries(schema)) {
    raw.set(key, { text: defaultText(d), origin: { kind: 'default', where: 'default' } });
  }
  // Values of options we do not know, kept only so that `$log_dir` and the like can be interpolated.
  const foreign = new Map<string, string>(); // "group\0name" -> value

  // Files.
  const files = listConfigFiles(options.flags);
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    let entries: IniEntry[];
    try {
      entries = parseIni(text, file);
    } catch (err) {
      if (err instanceof IniSyntaxError) throw new ConfigError(`config file ${err.message}`);
      throw err;
    }
    const unknownSections = new Map<string, IniEntry[]>();
    for (const e of entries) {
      const section = e.section.toLowerCase();
      const name = e.key.replace(/-/g, '_');
      const key = byIni.get(`${section}\0${name}`);
      if (key === undefined) {
        foreign.set(`${section}\0${name}`, e.value);
        const compat = compatibility(options.compat, e.section, name);
        if (compat !== undefined) {
          ignored.push(`${e.file}:${e.line}: [${e.section}] ${e.key}${compat ? ` (${compat})` : ''}`);
        } else if (!groups.has(section)) {
          const list = unknownSections.get(e.section) ?? [];
          list.push(e);
          unknownSections.set(e.section, list);
        } else {
          warnings.push(unknownOptionWarning(schema, e));
        }
        continue;
      }
      const d = schema[key]!;
      if (name !== d.name)
        warnings.push(`${e.file}:${e.line}: [${e.section}] ${e.key} is deprecated; use ${d.name}`);
      raw.set(key, {
        text: e.value,
        origin: { kind: 'file', where: `${e.file}:${e.line} [${e.section}] ${e.key}` },
      });
    }
    for (const [section, list] of unknownSections)
      warnings.push(unknownSectionWarning(groups, section, list));
  }

  // Environment.
  for (const [key, d] of Object.entries(schema)) {
    const name = envName(d, prefix);
    const value = env[name];
    if (value !== undefined)
      raw.set(key, { text: value, origin: { kind: 'env', where: `environment ${name}` } });
  }

  // Flags (and --<secret>-file).
  for (const [key, d] of Object.entries(schema)) {
    if (d.secret) {
      const fileFlag = `${d.name.replace(/_/g, '-')}-file`;
      const given = options.flags[fileFlag];
      const path = Array.isArray(given) ? given[given.length - 1] : given;
      if (typeof path === 'string') {
        let text: string;
        try {
          text = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
        } catch (err) {
          throw new ConfigError(
            `--${fileFlag} ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
          );
        }
        const exposed = exposedFile(path, d.name);
        if (exposed) exposedSecretFiles.push(exposed);
        raw.set(key, { text, origin: { kind: 'flag', where: `--${fileFlag}` } });
      }
      continue;
    }
    const flag = flagName(d);
    if (!flag) continue;
    const value = options.flags[flag];
    if (value === undefined) continue;
    if (d.kind === 'bool' && typeof value === 'boolean') {
      raw.set(key, { text: String(value), origin: { kind: 'flag', where: `--${flag}` } });
    } else if (d.kind === 'list') {
      const items = (Array.isArray(value) ? value : [value])
        .flatMap((v) => String(v).split(','))
        .map((v) => v.trim())
        .filter((v) => v !== '');
      raw.set(key, { text: items.join(','), origin: { kind: 'flag', where: `--${flag}` } });
    } else {
      // A repeated single-valued flag: the last one wins, as with oslo's and argparse's flags.
      const last = Array.isArray(value) ? value[value.length - 1] : value;
      raw.set(key, { text: String(last), origin: { kind: 'flag', where: `--${flag}` } });
    }
  }

  // Interpolate `$name` / `${name}` / `${group.name}` against effective values, then parse and check.
  const resolved = new Map<keyof S, string>();
  const resolving = new Set<keyof S>();
  const interpolate = (key: keyof S): string => {
    const cached = resolved.get(key);
    if (cached !== undefined) return cached;
    const r = raw.get(key)!;
    const d = schema[key]!;
    if (d.secret && r.origin.kind !== 'file') {
      resolved.set(key, r.text);
      return r.text;
    }
    if (resolving.has(key))
      throw new ConfigError(`${describeOrigin(r.origin, d)}: interpolation loop through $${d.name}`);
    resolving.add(key);
    const out = r.text.replace(
      /\$(\$|\{([\w.-]+)\}|(\w+))/g,
      (_m, all: string, braced?: string, bare?: string) => {
        if (all === '$') return '$';
        const ref = (braced ?? bare)!;
        const dot = ref.indexOf('.');
        const [group, name] = dot < 0 ? [d.group, ref] : [ref.slice(0, dot), ref.slice(dot + 1)];
        const candidates = dot < 0 ? [group.toLowerCase(), 'default'] : [group.toLowerCase()];
        for (const g of candidates) {
          const target = byIni.get(`${g}\0${name}`);
          if (target !== undefined) return interpolate(target);
          const value = foreign.get(`${g}\0${name}`);
          if (value !== undefined) return value;
        }
        throw new ConfigError(
          `${describeOrigin(r.origin, d)} = ${showValue(d, r.text)}: unknown option $${ref} in the value (write $$ for a literal $)`,
        );
      },
    );
    resolving.delete(key);
    resolved.set(key, out);
    return out;
  };

  const config: Record<string, unknown> = {};
  const origins: Record<string, string> = {};
  for (const [key, d] of Object.entries(schema)) {
    const r = raw.get(key)!;
    const parsed = parseValue(d, interpolate(key), r.origin);
    const problem = checkValue(d, parsed);
    if (problem)
      throw new ConfigError(`${describeOrigin(r.origin, d)} = ${showValue(d, r.text)}: ${problem}`);
    config[key] = Array.isArray(parsed) ? Object.freeze([...parsed]) : parsed;
    origins[key] = r.origin.where;
    if (d.secretFile && typeof parsed === 'string' && parsed !== '') {
      const exposed = exposedFile(parsed, d.name);
      if (exposed) exposedSecretFiles.push(exposed);
    }
  }
  return {
    config: Object.freeze(config) as ConfigOf<S>,
    warnings,
    exposedSecretFiles,
    origins: origins as Record<keyof S, string>,
    files,
    ignored,
  };
}

/** The file when every user can read it; undefined when it is private (or missing: its reader says so). */
function exposedFile(file: string, option: string): ExposedSecretFile | undefined {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return undefined;
  }
  return (mode & 0o004) !== 0 ? { file, option, mode } : undefined;
}

function defaultText(d: OptionDef): string {
  if (Array.isArray(d.default)) return d.default.join(',');
  return String(d.default);
}

function listConfigFiles(flags: Readonly<Record<string, unknown>>): string[] {
  const files = asStrings(flags['config-file']);
  for (const dir of asStrings(flags['config-dir'])) {
    let names: string[];
    try {
      if (!statSync(dir).isDirectory()) throw new ConfigError(`--config-dir ${dir}: not a directory`);
      names = readdirSync(dir);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(
        `--config-dir ${dir}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
    for (const n of names.filter((n) => n.endsWith('.conf') || n.endsWith('.ini')).sort())
      files.push(join(dir, n));
  }
  return files;
}

function asStrings(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);

function parseValue(d: OptionDef, text: string, origin: Origin): unknown {
  const fail = (why: string): never => {
    // oslo keeps everything after `=`; a trailing comment is the usual culprit.
    const hint = /\s[#;]/.test(text)
      ? ' (comments are only allowed on their own line: `#` inside a value is part of it)'
      : '';
    throw new ConfigError(`${describeOrigin(origin, d)} = ${showValue(d, text)}: ${why}${hint}`);
  };
  switch (d.kind) {
    case 'string':
      return text;
    case 'int': {
      const t = text.trim();
      // oslo reads an empty number as "not set" (None): the default applies.
      if (t === '' && origin.kind !== 'default') return d.default;
      if (!/^[-+]?\d+$/.test(t)) return fail('expected an integer');
      return Number.parseInt(t, 10);
    }
    case 'float': {
      const t = text.trim();
      if (t === '' && origin.kind !== 'default') return d.default;
      const n = Number(t);
      if (t === '' || !Number.isFinite(n)) return fail('expected a number');
      return n;
    }
    case 'bool': {
      const t = text.trim().toLowerCase();
      if (TRUE.has(t)) return true;
      if (FALSE.has(t)) return false;
      return fail('expected true or false');
    }
    case 'list':
      return text
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter((s) => s !== '');
    case 'enum': {
      const t = text.trim();
      const match = d.choices?.find((c) => c.toLowerCase() === t.toLowerCase());
      if (match === undefined) return fail(`expected one of ${d.choices?.join(', ')}`);
      return match;
    }
  }
}

function checkValue(d: OptionDef, v: unknown): string | undefined {
  if ((d.kind === 'int' || d.kind === 'float') && typeof v === 'number') {
    if (d.min !== undefined && v < d.min) return `must be at least ${d.min}`;
    if (d.max !== undefined && v > d.max) return `must be at most ${d.max}`;
  }
  return d.check?.(v as never);
}

function showValue(d: OptionDef, text: string): string {
  return d.secret ? '[secret]' : `'${text}'`;
}

function describeOrigin(origin: Origin, d: OptionDef): string {
  switch (origin.kind) {
    case 'file':
      return origin.where;
    case 'env':
      return origin.where;
    case 'flag':
      return `flag ${origin.where}`;
    default:
      return `default of [${d.group}] ${d.name}`;
  }
}

/** Whether a file option is accepted without effect: undefined if not, else its note ('' when none). */
function compatibility(
  compat: CompatibilityList | undefined,
  section: string,
  key: string,
): string | undefined {
  if (!compat) return undefined;
  for (const [pattern, note] of Object.entries(compat.notes ?? {}))
    if (matchesPattern(pattern, section, key)) return note;
  return compat.ignored.some((p) => matchesPattern(p, section, key)) ? '' : undefined;
}

function matchesPattern(pattern: string, section: string, key: string): boolean {
  const dot = pattern.indexOf('.');
  return (
    glob(pattern.slice(0, dot).toLowerCase(), section.toLowerCase()) && glob(pattern.slice(dot + 1), key)
  );
}

function glob(pattern: string, text: string): boolean {
  if (!pattern.includes('*')) return pattern === text;
  const re = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
  return re.test(text);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function unknownOptionWarning(schema: Schema, e: IniEntry): string {
  let best: string | undefined;
  let bestDistance = 4;
  for (const d of Object.values(schema)) {
    const dist = editDistance(d.name, e.key.toLowerCase());
    if (dist < bestDistance) {
      bestDistance = dist;
      best = d.group.toLowerCase() === e.section.toLowerCase() ? d.name : `[${d.group}] ${d.name}`;
    }
  }
  const hint = best ? ` (did you mean ${best}?)` : '';
  return `${e.file}:${e.line}: unknown option [${e.section}] ${e.key}${hint}; it is ignored`;
}

/** One line for a whole section we do not read (a typo'd section name, or a section of another program). */
function unknownSectionWarning(groups: ReadonlySet<string>, section: string, entries: IniEntry[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const g of groups) {
    const dist = editDistance(g, section.toLowerCase());
    if (dist < bestDistance) {
      bestDistance = dist;
      best = g === 'default' ? 'DEFAULT' : g;
    }
  }
  const first = entries[0]!;
  const hint = best ? ` (did you mean [${best}]?)` : '';
  const names = entries.map((e) => e.key).join(', ');
  return `${first.file}:${first.line}: unknown section [${section}]${hint}; its options are ignored: ${names}`;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The effective configuration for printing: secrets masked, origins shown. */
export function describeConfig<S extends Schema>(schema: S, loaded: LoadedConfig<S>): string {
  const lines: string[] = [];
  const groups = new Map<string, string[]>();
  for (const [key, d] of Object.entries(schema)) {
    const value = loaded.config[key as keyof S] as unknown;
    const shown = d.secret
      ? value === ''
        ? "''  (empty!)"
        : '****'
      : Array.isArray(value)
        ? value.join(',')
        : String(value);
    const line = `${d.name} = ${shown}    # ${loaded.origins[key as keyof S]}`;
    const list = groups.get(d.group) ?? [];
    list.push(line);
    groups.set(d.group, list);
  }
  for (const [group, entries] of groups) {
    lines.push(`[${group}]`, ...entries, '');
  }
  return lines.join('\n');
}
