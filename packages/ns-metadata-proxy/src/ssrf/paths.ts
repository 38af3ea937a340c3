/*
 * Path allow and deny lists for the SSRF defences. A rule is either
 *   - a prefix on segment boundaries: `/openstack` matches `/openstack`, `/openstack/` and everything
 *     below, never `/openstackx` (a trailing slash in the rule changes nothing); `/` matches every path;
 *   - or a glob, when it holds `*` or `?`: `*` is any run of characters inside one segment, `**` any run
 *     across segments, `?` one character other than `/`; the glob must match the whole path:
 *     `/openstack/*\/user_data`, `/*\/user-data`, `/**\/password`.
 * Rules match the path only (no query), after percent-decoding and collapsing repeated slashes, so
 * `/openstack//latest/%75ser_data` is checked as `/openstack/latest/user_data`, which is how Nova reads
 * it (WSGI PATH_INFO is percent-decoded, then posixpath.normpath'd, reference.md §7.2). Nova also resolves
 * `..`, so `/openstack/../latest/user-data` is EC2 user data there: with lists configured, a path holding
 * a dot segment (plain or encoded), an encoded slash or backslash, a NUL or invalid percent-encoding is
 * refused outright, and no rule can be bypassed by spelling a path differently.
 */
import type { ProgramErrorCode } from '@nmp/common';

export class PathRuleError extends Error {
  readonly code = 'MDP_ERR_PATH_RULE' satisfies ProgramErrorCode;
  constructor(message: string) {
    super(message);
    this.name = 'PathRuleError';
  }
}

type Rule =
  | { readonly kind: 'prefix'; readonly prefix: string }
  | { readonly kind: 'glob'; readonly re: RegExp };

/** A compiled list of rules; empty lists match nothing. */
export class PathRules {
  readonly #rules: readonly Rule[];
  readonly source: readonly string[];

  constructor(patterns: readonly string[]) {
    this.source = patterns.map((p) => p.trim()).filter((p) => p !== '');
    this.#rules = this.source.map(compileRule);
  }

  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /** Whether a canonical path (see canonicalPath) matches any rule. */
  matches(path: string): boolean {
    for (const r of this.#rules) {
      if (r.kind === 'prefix') {
        if (
          r.prefix === '' ||
          path === r.prefix ||
          (path.startsWith(r.prefix) && path.charCodeAt(r.prefix.length) === 47) /* / */
        )
          return true;
      } else if (r.re.test(path)) return true;
    }
    return false;
  }
}

function compileRule(pattern: string): Rule {
  if (pattern.charCodeAt(0) !== 47 /* / */)
    throw new PathRuleError(`path rule '${pattern}' must start with /`);
  if (pattern.includes('#')) throw new PathRuleError(`path rule '${pattern}' must not hold a fragment`);
  const canonical = canonicalPath(pattern.replace(/[*?]/g, 'x'));
  if (canonical === undefined)
    throw new PathRuleError(
      `path rule '${pattern}' holds a dot segment, encoded slash or bad percent-encoding`,
    );
  if (!/[*?]/.test(pattern)) {
    const p = collapse(decodeURIComponent(pattern));
    return { kind: 'prefix', prefix: p.endsWith('/') ? p.slice(0, -1) : p };
  }
  let re = '^';
  const text = collapse(decodeURIComponent(pattern));
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '*') {
      if (text[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return { kind: 'glob', re: new RegExp(`${re}$`, 's') };
}

function collapse(path: string): string {
  return path.replace(/\/{2,}/g, '/');
}

/**
 * The path of a request target as rules see it, or undefined when it cannot be checked safely (dot
 * segments, encoded `/` or `\`, backslashes, NUL, invalid percent-encoding).
 */
export function canonicalPath(target: string): string | undefined {
  let end = target.length;
  const q = target.indexOf('?');
  if (q !== -1) end = q;
  const h = target.indexOf('#');
  if (h !== -1 && h < end) end = h;
  const raw = target.slice(0, end);
  if (/%(?:2f|5c|00)/i.test(raw) || raw.includes('\\')) return undefined;
  let decoded: string;
  try {
    decoded = raw.includes('%') ? decodeURIComponent(raw) : raw;
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const path = collapse(decoded);
  if (/\/\.\.?(?:\/|$)/.test(path)) return undefined;
  return path;
}
