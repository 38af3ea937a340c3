/*
 * Typed option definitions: one place says each option's INI name and section, type, default, limits,
 * whether it is a secret, and its help text. The loader, the CLI flags, the printed configuration and
 * docs/configuration.md all come from these definitions.
 */

export type OptionKind = 'string' | 'int' | 'float' | 'bool' | 'list' | 'enum';

export interface OptionDef<T = unknown> {
  readonly kind: OptionKind;
  /** Name in the INI file (neutron's name where neutron has one). */
  readonly name: string;
  /** INI section; DEFAULT when absent. */
  readonly group: string;
  readonly default: T;
  readonly help: string;
  /** Never accepted as a flag, never printed; may come from a file, the environment or `--<flag>-file`. */
  readonly secret: boolean;
  /** The value names a file that holds a secret (a TLS key): the loader reports it when others can read it. */
  readonly secretFile?: boolean;
  /** Flag name without dashes, or false for no flag. Defaults to the kebab-cased name. */
  readonly flag: string | false;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
  /** Earlier names still accepted in files (with a warning). */
  readonly deprecatedNames?: readonly string[];
  /** Extra check after parsing; return a message to reject the value. */
  readonly check?: (value: T) => string | undefined;
}

type Common<T> = {
  name: string;
  group?: string;
  default: T;
  help: string;
  secret?: boolean;
  secretFile?: boolean;
  flag?: string | false;
  deprecatedNames?: readonly string[];
  check?: (value: T) => string | undefined;
};

function def<T>(
  kind: OptionKind,
  o: Common<T> & { min?: number; max?: number; choices?: readonly string[] },
) {
  const out: OptionDef<T> = {
    kind,
    name: o.name,
    group: o.group ?? 'DEFAULT',
    default: o.default,
    help: o.help,
    secret: o.secret ?? false,
    flag: o.secret ? false : o.flag === undefined ? o.name.replace(/_/g, '-') : o.flag,
    ...(o.min !== undefined ? { min: o.min } : {}),
    ...(o.max !== undefined ? { max: o.max } : {}),
    ...(o.choices ? { choices: o.choices } : {}),
    ...(o.deprecatedNames ? { deprecatedNames: o.deprecatedNames } : {}),
    ...(o.check ? { check: o.check } : {}),
    ...(o.secretFile ? { secretFile: true } : {}),
  };
  return out;
}

export const opt = {
  string: (o: Common<string>) => def<string>('string', o),
  int: (o: Common<number> & { min?: number; max?: number }) => def<number>('int', o),
  float: (o: Common<number> & { min?: number; max?: number }) => def<number>('float', o),
  bool: (o: Common<boolean>) => def<boolean>('bool', o),
  list: (o: Common<readonly string[]>) => def<readonly string[]>('list', o),
  enum: <C extends string>(o: Common<C> & { choices: readonly C[] }) => def<C>('enum', o),
};

// biome-ignore lint/suspicious/noExplicitAny: each option has its own value type; ConfigOf recovers them.
export type Schema = Readonly<Record<string, OptionDef<any>>>;

export type ConfigOf<S extends Schema> = {
  readonly [K in keyof S]: S[K] extends OptionDef<infer T> ? T : never;
};

/** Options neutron's config files commonly hold that we accept without effect (no "unknown option" warning). */
export interface CompatibilityList {
  /**
   * `section.name` patterns accepted and ignored; `*` matches any run of characters in either part
   * (`AGENT.*`, `oslo_messaging_*.*`, `DEFAULT.logging_*`). Section names match case-insensitively.
   * They are listed in LoadedConfig.ignored, never warned about.
   */
  readonly ignored: readonly string[];
  /**
   * Patterns (same syntax) of options that have no effect but deserve a word: the text is appended to the
   * entry in LoadedConfig.ignored (e.g. which of our options does the job instead).
   */
  readonly notes?: Readonly<Record<string, string>>;
}
