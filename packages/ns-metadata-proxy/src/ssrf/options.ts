/*
 * The [metadata_ssrf] options: opt-in defences against server-side request forgery (docs/security.md).
 * A schema fragment spread into the proxy's schema, so every option comes from the config files every
 * proxy reads (global), a later --config-file of one proxy, its flags (per proxy) or NMP_METADATA_SSRF__*
 * variables. All default to off: cloud-init's OpenStack datasource sends no token and no extra header.
 * ssrfSettings() validates the combination once, at the edge, into the frozen settings the policy takes.
 */
import { ConfigError, HOP_BY_HOP_HEADERS, IDENTITY_HEADERS, opt } from '@nmp/common';
import { TOKEN_HEADERS } from '../header-names.js';
import { PathRuleError, PathRules } from './paths.js';
import { TOKEN_TTL_MAX, TOKEN_TTL_MIN } from './session-token.js';

export const TOKEN_MODES = ['off', 'optional', 'required'] as const;
export type TokenMode = (typeof TOKEN_MODES)[number];

const GROUP = 'metadata_ssrf';

export const ssrfOptions = {
  tokenMode: opt.enum({
    name: 'token_mode',
    group: GROUP,
    default: 'off',
    choices: TOKEN_MODES,
    help: 'IMDSv2-style session tokens (PUT /latest/api/token): off; optional (a token sent is checked, none is accepted); required (401 without a valid one)',
  }),
  tokenMaxTtl: opt.int({
    name: 'token_max_ttl',
    group: GROUP,
    default: TOKEN_TTL_MAX,
    min: TOKEN_TTL_MIN,
    max: TOKEN_TTL_MAX,
    help: 'Longest token lifetime in seconds; longer requests get this (the answer echoes it)',
  }),
  tokenKeyFile: opt.string({
    name: 'token_key_file',
    group: GROUP,
    default: '',
    help: 'File with the node key that signs tokens (created, mode 0600, if missing); shared by the proxies of a node and across restarts. Empty: a random key per process',
  }),
  requiredHeader: opt.string({
    name: 'required_header',
    group: GROUP,
    default: '',
    help: "Refuse (403) requests without this header, as 'Name: value' (e.g. 'Metadata-Flavor: OpenStack'); a valid token also suffices. Empty: off",
    check: (v) => problem(() => parseRequiredHeader(v)),
  }),
  refuseForwardedFor: opt.bool({
    name: 'refuse_forwarded_for',
    group: GROUP,
    default: false,
    help: 'Refuse (403) requests that arrive with X-Forwarded-For or Forwarded (token requests always are)',
  }),
  pathAllow: opt.list({
    name: 'path_allow',
    group: GROUP,
    default: [],
    help: 'Only these paths are forwarded: prefixes (/openstack) or globs (/openstack/*/meta_data.json, /**/user-data). Empty: all',
    check: (v) => problem(() => new PathRules(v)),
  }),
  pathDeny: opt.list({
    name: 'path_deny',
    group: GROUP,
    default: [],
    help: 'These paths are refused (403), even when allowed: prefixes or globs as path_allow',
    check: (v) => problem(() => new PathRules(v)),
  }),
};

/** The message of what `f` throws, for an option's check (the loader adds where the value came from). */
function problem(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PathRuleError) return err.message;
    throw err;
  }
}

export interface RequiredHeader {
  /** Lower case. */
  readonly name: string;
  readonly value: string;
}

/** What the policy takes: validated, with the key file not yet read (that is the CLI's job). */
export interface SsrfSettings {
  readonly tokenMode: TokenMode;
  readonly tokenMaxTtl: number;
  readonly tokenKeyFile: string;
  readonly requiredHeader: RequiredHeader | undefined;
  readonly refuseForwardedFor: boolean;
  readonly pathAllow: readonly string[];
  readonly pathDeny: readonly string[];
}

/** The values of ssrfOptions as loadConfig returns them (also inside a larger schema's config). */
export interface SsrfConfig {
  readonly tokenMode: TokenMode;
  readonly tokenMaxTtl: number;
  readonly tokenKeyFile: string;
  readonly requiredHeader: string;
  readonly refuseForwardedFor: boolean;
  readonly pathAllow: readonly string[];
  readonly pathDeny: readonly string[];
}

/** Headers the proxy removes or rewrites itself, or that frame the request: useless as a required header. */
const UNUSABLE_HEADERS = new Set(['host', 'content-length', 'expect', 'cookie', 'authorization']);

/** `Name: value` into a header requirement; throws ConfigError for what could never be satisfied. */
export function parseRequiredHeader(text: string): RequiredHeader | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  const colon = t.indexOf(':');
  const name = (colon === -1 ? t : t.slice(0, colon)).trim();
  const value = colon === -1 ? '' : t.slice(colon + 1).trim();
  if (colon === -1 || value === '') throw new ConfigError("expected 'Name: value'");
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new ConfigError('invalid header name');
  if (!/^[\t\x20-\x7e]+$/.test(value)) throw new ConfigError('the value must be printable ASCII');
  const lower = name.toLowerCase();
  if (
    IDENTITY_HEADERS.has(lower) ||
    HOP_BY_HOP_HEADERS.has(lower) ||
    TOKEN_HEADERS.has(lower) ||
    UNUSABLE_HEADERS.has(lower)
  ) {
    throw new ConfigError(`${name} cannot be required (the proxy strips or interprets it)`);
  }
  return { name: lower, value };
}

/** Validate the [metadata_ssrf] values into settings; undefined when every defence is off. */
export function ssrfSettings(config: SsrfConfig): SsrfSettings | undefined {
  let requiredHeader: RequiredHeader | undefined;
  try {
    requiredHeader = parseRequiredHeader(config.requiredHeader);
  } catch (err) {
    throw new ConfigError(`[${GROUP}] required_header '${config.requiredHeader}': ${(err as Error).message}`);
  }
  for (const [option, list] of [
    ['path_allow', config.pathAllow],
    ['path_deny', config.pathDeny],
  ] as const) {
    try {
      new PathRules(list);
    } catch (err) {
      if (err instanceof PathRuleError) throw new ConfigError(`[${GROUP}] ${option}: ${err.message}`);
      throw err;
    }
  }
  const settings: SsrfSettings = Object.freeze({
    tokenMode: config.tokenMode,
    tokenMaxTtl: config.tokenMaxTtl,
    tokenKeyFile: config.tokenKeyFile,
    requiredHeader,
    refuseForwardedFor: config.refuseForwardedFor,
    pathAllow: Object.freeze(config.pathAllow.map((p) => p.trim()).filter((p) => p !== '')),
    pathDeny: Object.freeze(config.pathDeny.map((p) => p.trim()).filter((p) => p !== '')),
  });
  return ssrfEnabled(settings) ? settings : undefined;
}

/** Whether any defence is on (when none is, the request path does not even call the policy). */
export function ssrfEnabled(s: SsrfSettings): boolean {
  return (
    s.tokenMode !== 'off' ||
    s.requiredHeader !== undefined ||
    s.refuseForwardedFor ||
    s.pathAllow.length > 0 ||
    s.pathDeny.length > 0
  );
}
