/*
 * The opt-in SSRF defences (docs/security.md) as one decision per request, taken right after the request
 * line is checked and before anything reaches the agent. Given the method, target, raw headers, source
 * address and the proxy's identity it says one of:
 *   forward  - go on (token headers are stripped later, by header-policy, for every request);
 *   answer   - the proxy answers itself: `PUT /latest/api/token` -> 200 with a session token;
 *   refuse   - a status with a stable code and a reason label (the `reason` of the log line and metrics).
 *
 * Order of the checks, and why:
 *   1. token PUT (token_mode optional or required): refused when it carries X-Forwarded-For or Forwarded
 *      (it came through a proxy inside the guest, the SSRF shape); 400 for a missing or invalid TTL;
 *      else answered. The required header and the path lists do not apply: the endpoint is the proxy's
 *      own, and a PUT with a custom header is already more than a forged GET can do.
 *   2. refuse_forwarded_for: any request with X-Forwarded-For or Forwarded -> 403 forwarded_for.
 *   3. path_deny, then path_allow -> 403 path_denied.
 *   4. a token, when one is sent (optional) or always (required): 401 token_missing, token_invalid or
 *      token_expired. As EC2, optional mode also refuses a token that is sent but not valid.
 *   5. required_header -> 403 header_missing, unless a valid token came with the request: a token proves
 *      at least as much as a header does, so token clients (the AWS SDK) need not send it too.
 */
import {
  ConfigError,
  ERRORS,
  type ErrorSpec,
  HEADER_FORWARDED,
  HEADER_FORWARDED_FOR,
  type ProxyIdentity,
} from '@nmp/common';
import { TOKEN_TTL_HEADER } from '../header-names.js';
import type { RequiredHeader, SsrfSettings, TokenMode } from './options.js';
import { canonicalPath, PathRules } from './paths.js';
import {
  generateNodeKey,
  loadNodeKey,
  NodeKeyError,
  SessionTokens,
  TOKEN_TTL_MAX,
  TOKEN_TTL_MIN,
  type TokenBinding,
} from './session-token.js';

export const TOKEN_PATH = '/latest/api/token';

/** The policy's failures: entries of @nmp/common's ERRORS table, one code per reason. */
export const SSRF_ERRORS = {
  MDP_ERR_TOKEN_TTL_INVALID: ERRORS.MDP_ERR_TOKEN_TTL_INVALID,
  MDP_ERR_TOKEN_MISSING: ERRORS.MDP_ERR_TOKEN_MISSING,
  MDP_ERR_TOKEN_INVALID: ERRORS.MDP_ERR_TOKEN_INVALID,
  MDP_ERR_TOKEN_EXPIRED: ERRORS.MDP_ERR_TOKEN_EXPIRED,
  MDP_ERR_FORWARDED_REQUEST: ERRORS.MDP_ERR_FORWARDED_REQUEST,
  MDP_ERR_HEADER_MISSING: ERRORS.MDP_ERR_HEADER_MISSING,
  MDP_ERR_PATH_DENIED: ERRORS.MDP_ERR_PATH_DENIED,
} as const satisfies Record<string, ErrorSpec>;

export type SsrfErrorCode = keyof typeof SSRF_ERRORS;

/** Stable labels of the refusals (the `reason` of the log line; the metrics label). */
export type SsrfRefusalReason =
  | 'token_ttl_invalid'
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'forwarded_for'
  | 'header_missing'
  | 'path_denied';

export const SSRF_REASON_CODES: Readonly<Record<SsrfRefusalReason, SsrfErrorCode>> = {
  token_ttl_invalid: 'MDP_ERR_TOKEN_TTL_INVALID',
  token_missing: 'MDP_ERR_TOKEN_MISSING',
  token_invalid: 'MDP_ERR_TOKEN_INVALID',
  token_expired: 'MDP_ERR_TOKEN_EXPIRED',
  forwarded_for: 'MDP_ERR_FORWARDED_REQUEST',
  header_missing: 'MDP_ERR_HEADER_MISSING',
  path_denied: 'MDP_ERR_PATH_DENIED',
};

export const SSRF_REFUSAL_REASONS = Object.keys(SSRF_REASON_CODES) as readonly SsrfRefusalReason[];

const REASON_BY_CODE = new Map<string, SsrfRefusalReason>(
  SSRF_REFUSAL_REASONS.map((r) => [SSRF_REASON_CODES[r], r]),
);

/** The reason label of one of our codes (for the metrics' refused-by-reason); undefined for other codes. */
export function ssrfReasonForCode(code: string | undefined): SsrfRefusalReason | undefined {
  return code === undefined ? undefined : REASON_BY_CODE.get(code);
}

export interface SsrfForward {
  readonly kind: 'forward';
  /** What the token check saw: a valid token, none (accepted: optional mode), or tokens are off. */
  readonly token: 'valid' | 'absent' | 'off';
}

export interface SsrfAnswer {
  readonly kind: 'answer';
  readonly status: 200;
  /** In this order: the TTL header first, where the hop-limit rule looks for it. */
  readonly headers: Readonly<Record<string, string | number>>;
  readonly body: string;
}

export interface SsrfRefusal {
  readonly kind: 'refuse';
  readonly status: number;
  readonly code: SsrfErrorCode;
  readonly reason: SsrfRefusalReason;
  readonly level: ErrorSpec['level'];
  /** The body's text (without the newline). */
  readonly message: string;
  /** For the log line: `reason` and what it concerns (never a token). */
  readonly details: Readonly<Record<string, unknown>>;
}

export type SsrfDecision = SsrfForward | SsrfAnswer | SsrfRefusal;

const FORWARD_VALID: SsrfForward = Object.freeze({ kind: 'forward', token: 'valid' });
const FORWARD_ABSENT: SsrfForward = Object.freeze({ kind: 'forward', token: 'absent' });
const FORWARD_OFF: SsrfForward = Object.freeze({ kind: 'forward', token: 'off' });

export interface SsrfPolicyOptions {
  readonly settings: SsrfSettings;
  /** Signs tokens; required unless token mode is off (the CLI loads or generates the node key). */
  readonly tokens?: SessionTokens;
}

/** Counters for metrics (read on scrape); refusals are counted by reason where the log line is written. */
export interface SsrfCounts {
  tokensIssued: number;
  /** Forwarded requests that carried a valid token. */
  withToken: number;
  /** Forwarded requests without a token while tokens are optional: what required mode would refuse. */
  withoutToken: number;
}

export class SsrfPolicy {
  readonly settings: SsrfSettings;
  readonly counts: SsrfCounts = { tokensIssued: 0, withToken: 0, withoutToken: 0 };
  readonly #mode: TokenMode;
  readonly #tokens: SessionTokens | undefined;
  readonly #header: RequiredHeader | undefined;
  readonly #allow: PathRules;
  readonly #deny: PathRules;
  readonly #checkPaths: boolean;

  constructor(options: SsrfPolicyOptions) {
    const s = options.settings;
    this.settings = s;
    this.#mode = s.tokenMode;
    if (s.tokenMode !== 'off' && options.tokens === undefined)
      throw new TypeError(`token_mode ${s.tokenMode} needs a SessionTokens (node key)`);
    if (s.tokenMaxTtl < TOKEN_TTL_MIN || s.tokenMaxTtl > TOKEN_TTL_MAX || !Number.isInteger(s.tokenMaxTtl))
      throw new RangeError(`token_max_ttl must be ${TOKEN_TTL_MIN}-${TOKEN_TTL_MAX}`);
    this.#tokens = options.tokens;
    this.#header = s.requiredHeader;
    this.#allow = new PathRules(s.pathAllow);
    this.#deny = new PathRules(s.pathDeny);
    this.#checkPaths = !this.#allow.empty || !this.#deny.empty;
  }

  /** The decision for one request; `source` is the address the proxy stamps in X-Forwarded-For. */
  decide(
    method: string,
    url: string,
    rawHeaders: readonly string[],
    source: string,
    identity: ProxyIdentity,
  ): SsrfDecision {
    let token: string | undefined;
    let tokenCopies = 0;
    let ttl: string | undefined;
    let ttlCopies = 0;
    let forwarded: string | undefined;
    let headerOk = 0;
    let headerSeen = 0;
    const wanted = this.#header;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!;
      // Cheap length test before lower-casing: most headers are none of ours.
      const n = name.length;
      if (n !== 24 && n !== 36 && n !== 15 && n !== 9 && (wanted === undefined || n !== wanted.name.length))
        continue;
      const lower = name.toLowerCase();
      if (lower === 'x-aws-ec2-metadata-token') {
        token = rawHeaders[i + 1]!;
        tokenCopies++;
      } else if (lower === 'x-aws-ec2-metadata-token-ttl-seconds') {
        ttl = rawHeaders[i + 1]!;
        ttlCopies++;
      } else if (lower === HEADER_FORWARDED_FOR || lower === HEADER_FORWARDED) {
        forwarded ??= lower;
      } else if (wanted !== undefined && lower === wanted.name) {
        headerSeen++;
        if (rawHeaders[i + 1] === wanted.value) headerOk++;
      }
    }

    const q = url.indexOf('?');
    const isTokenRequest =
      this.#mode !== 'off' && method === 'PUT' && (q === -1 ? url : url.slice(0, q)) === TOKEN_PATH;
    if (isTokenRequest) {
      if (forwarded !== undefined) return refuse('forwarded_for', { header: forwarded, tokenRequest: true });
      return this.#issue(ttl, ttlCopies, source, identity);
    }

    if (forwarded !== undefined && this.settings.refuseForwardedFor)
      return refuse('forwarded_for', { header: forwarded });

    if (this.#checkPaths) {
      const path = canonicalPath(url);
      if (path === undefined) return refuse('path_denied', { rule: 'uncheckable' });
      if (this.#deny.matches(path)) return refuse('path_denied', { rule: 'deny' });
      if (!this.#allow.empty && !this.#allow.matches(path)) return refuse('path_denied', { rule: 'allow' });
    }

    let forward = FORWARD_OFF;
    if (this.#mode !== 'off') {
      if (tokenCopies === 0) {
        if (this.#mode === 'required') return refuse('token_missing', {});
        forward = FORWARD_ABSENT;
      } else {
        if (tokenCopies > 1) return refuse('token_invalid', { copies: tokenCopies });
        const check = this.#tokens!.verify(token!, binding(source, identity));
        if (check === 'invalid') return refuse('token_invalid', {});
        if (check === 'expired') return refuse('token_expired', {});
        forward = FORWARD_VALID;
      }
    }

    if (wanted !== undefined && forward !== FORWARD_VALID && !(headerOk === 1 && headerSeen === 1)) {
      return refuse('header_missing', { header: wanted.name, present: headerSeen > 0 });
    }

    if (forward === FORWARD_VALID) this.counts.withToken++;
    else if (forward === FORWARD_ABSENT) this.counts.withoutToken++;
    return forward;
  }

  #issue(ttl: string | undefined, copies: number, source: string, identity: ProxyIdentity): SsrfDecision {
    if (copies !== 1 || ttl === undefined || !/^[0-9]{1,5}$/.test(ttl))
      return refuse('token_ttl_invalid', copies > 1 ? { copies } : {});
    const asked = Number(ttl);
    if (asked < TOKEN_TTL_MIN || asked > TOKEN_TTL_MAX) return refuse('token_ttl_invalid', { ttl: asked });
    const granted = Math.min(asked, this.settings.tokenMaxTtl);
    const body = this.#tokens!.issue(binding(source, identity), granted);
    this.counts.tokensIssued++;
    return {
      kind: 'answer',
      status: 200,
      headers: {
        [TOKEN_TTL_HEADER]: String(granted),
        'Content-Type': 'text/plain',
        'Content-Length': body.length,
        'Cache-Control': 'no-store',
      },
      body,
    };
  }
}

function binding(source: string, identity: ProxyIdentity): TokenBinding {
  return { source, mode: identity.mode, id: identity.id };
}

function refuse(reason: SsrfRefusalReason, extra: Record<string, unknown>): SsrfRefusal {
  const code = SSRF_REASON_CODES[reason];
  const spec = SSRF_ERRORS[code];
  return {
    kind: 'refuse',
    status: spec.status,
    code,
    reason,
    level: spec.level,
    message: spec.message,
    details: { reason, ...extra },
  };
}

export interface TokenKey {
  /** The node key that signs tokens; undefined when token mode is off. */
  readonly key: Buffer | undefined;
  /** For the log (a key file others can read). */
  readonly warnings: readonly string[];
}

/**
 * The node key token mode needs: read from token_key_file (created if missing), or generated when no file
 * is named; none when tokens are off. Run once at start, at the edge and as root: it reads a file.
 */
export function loadTokenKey(settings: SsrfSettings): TokenKey {
  if (settings.tokenMode === 'off') return { key: undefined, warnings: [] };
  if (settings.tokenKeyFile === '') return { key: generateNodeKey(), warnings: [] };
  try {
    const loaded = loadNodeKey(settings.tokenKeyFile);
    return { key: loaded.key, warnings: loaded.warnings };
  } catch (err) {
    if (err instanceof NodeKeyError) throw new ConfigError(`[metadata_ssrf] ${err.message}`);
    throw err;
  }
}

/**
 * The policy for validated settings and a node key: loadTokenKey's by default, or the one the daemon's
 * supervisor loaded and handed to its unprivileged worker. Warnings are for the log.
 */
export function createSsrfPolicy(
  settings: SsrfSettings,
  key: TokenKey = loadTokenKey(settings),
): { policy: SsrfPolicy; warnings: readonly string[] } {
  if (settings.tokenMode !== 'off' && key.key === undefined)
    throw new TypeError(`token_mode ${settings.tokenMode} needs a node key`);
  const tokens = key.key === undefined ? undefined : new SessionTokens(key.key);
  return { policy: new SsrfPolicy({ settings, ...(tokens ? { tokens } : {}) }), warnings: key.warnings };
}
