/*
 * Keystone v3 authentication for the Neutron resolver, following keystoneauth's behaviour and option
 * names: password (user by name + domain or by id, project by name + domain or by id) or application
 * credential (by id, or by name + user). One token is shared by every lookup and reused until shortly
 * before it expires (then renewed in the background while the old one still serves); concurrent callers
 * needing a token share one POST /v3/auth/tokens. The Neutron endpoint comes from the token's catalog
 * (service type "network", interface, region) unless an endpoint override is configured.
 *
 * Two failures make the client wait before asking Keystone again, because asking again at once cannot
 * help and each lookup would ask:
 *   - Keystone refuses the login (401, or any 4xx): every refused login counts towards Keystone's account
 *     lockout ([security_compliance] lockout_failure_attempts), so one login per lookup in a boot storm
 *     would lock the agent's service user for the whole cloud.
 *   - the token's catalog has no usable network endpoint: the token is valid and kept (it is counted as
 *     issued); after the wait its catalog is read again with GET /v3/auth/catalog, which is no login.
 * The wait starts at `retry.initialMs` and doubles after each failed try up to `retry.maxMs`
 * ([neutron] auth_retry_max_interval); one try at a time. Meanwhile lookups fail at once with the same 503
 * (MDA_ERR_RESOLVER_UNAVAILABLE, the first failure's details and `retryAt`), and the log says so once per
 * cause, not once per try. reload() (SIGHUP) with changed credentials drops the wait and logs in at once.
 *
 * The password, the application credential secret and the token never leave this file except in the
 * request body / X-Auth-Token header: not in logs, not in errors.
 */
import { type Logger, MetadataError } from '@nmp/common';
import { type UpstreamHttp, type UpstreamResponse, unavailable } from './upstream-http.js';

export type EndpointInterface = 'public' | 'internal' | 'admin';

export interface KeystoneAuthOptions {
  /** Keystone URL, with or without /v3. */
  readonly authUrl: string;
  readonly authType: 'password' | 'v3applicationcredential';
  readonly username?: string;
  readonly userId?: string;
  readonly password?: string;
  readonly userDomainName?: string;
  readonly userDomainId?: string;
  readonly projectName?: string;
  readonly projectId?: string;
  readonly projectDomainName?: string;
  readonly projectDomainId?: string;
  readonly applicationCredentialId?: string;
  readonly applicationCredentialName?: string;
  readonly applicationCredentialSecret?: string;
}

export interface EndpointSelection {
  readonly interface: EndpointInterface;
  readonly regionName?: string;
  /** Neutron URL to use instead of the catalog's. */
  readonly endpointOverride?: string;
}

/** A usable token and where Neutron is. */
export interface KeystoneSession {
  readonly token: string;
  /** Local clock time after which the token is not used at all. */
  readonly expiresAt: number;
  /** Local clock time after which a new token is fetched in the background. */
  readonly renewAt: number;
  /** Base of Neutron's v2.0 API, e.g. https://neutron.example:9696/v2.0 (no trailing slash). */
  readonly networkApi: URL;
}

/** A token Keystone issued; without networkApi when its catalog had no usable network endpoint. */
interface TokenState extends Omit<KeystoneSession, 'networkApi'> {
  readonly networkApi: URL | undefined;
  /** Why there is no networkApi (selectEndpoint's words). */
  readonly catalogProblem?: string;
}

function usable(t: TokenState): t is KeystoneSession {
  return t.networkApi !== undefined;
}

/** How long to wait before asking Keystone again after a refused login or an unusable catalog. */
export interface KeystoneRetry {
  /** The first wait (ms). */
  readonly initialMs: number;
  /** The longest wait (ms): each failed try doubles the wait up to this. */
  readonly maxMs: number;
}

/** The first wait; [neutron] auth_retry_max_interval (default 300 s) caps the doubling. */
export const AUTH_RETRY_INITIAL_MS = 5000;
export const DEFAULT_KEYSTONE_RETRY: KeystoneRetry = { initialMs: AUTH_RETRY_INITIAL_MS, maxMs: 300_000 };

/** The wait after the `failures`-th failed try in a row (1, 2, ...). */
export function retryDelay(retry: KeystoneRetry, failures: number): number {
  return Math.min(retry.initialMs * 2 ** Math.max(0, failures - 1), retry.maxMs);
}

type WaitCause = 'refused' | 'catalog';

interface Backoff {
  readonly cause: WaitCause;
  /** Failed tries in a row. */
  readonly failures: number;
  /** No new try before this (local clock, ms). */
  readonly retryAt: number;
  /** The failure every lookup gets meanwhile (its code and details). */
  readonly error: MetadataError;
}

/** keystoneauth re-authenticates when a token has less than this left (MIN_TOKEN_LIFE_SECONDS). */
const RENEW_BEFORE_MS = 120_000;

export interface KeystoneStats {
  /** Tokens Keystone issued (201 with X-Subject-Token), usable or not. */
  readonly tokensIssued: number;
  /** Logins Keystone did not answer with a token (refused or failed). */
  readonly authFailures: number;
  /** GET /v3/auth/catalog requests (re-reading the catalog of a kept token). */
  readonly catalogRequests: number;
}

/** What reload() started: a login with new credentials, a new look at the catalog, or nothing. */
export type ReloadAction = 'login' | 'catalog' | 'none';

/** Login answers that start a wait: Keystone refused (4xx), so asking again at once cannot help. */
const REFUSALS = new WeakSet<MetadataError>();

export class KeystoneClient {
  readonly #http: UpstreamHttp;
  readonly #endpoint: EndpointSelection;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #retry: KeystoneRetry;
  #auth: KeystoneAuthOptions;
  #tokensUrl: URL;
  #catalogUrl: URL;
  #body: string;
  /** Bumped by a change of credentials: what a try started before then finds is not kept. */
  #generation = 0;
  #token: TokenState | undefined;
  #pending: Promise<KeystoneSession> | undefined;
  #backoff: Backoff | undefined;
  #tokensIssued = 0;
  #authFailures = 0;
  #catalogRequests = 0;

  /** `timeoutMs` bounds a background token renewal (a lookup's own deadline bounds the others). */
  constructor(
    http: UpstreamHttp,
    auth: KeystoneAuthOptions,
    endpoint: EndpointSelection,
    log: Logger,
    timeoutMs: number,
    retry: KeystoneRetry = DEFAULT_KEYSTONE_RETRY,
  ) {
    this.#http = http;
    this.#auth = auth;
    this.#endpoint = endpoint;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
    this.#retry = retry;
    this.#tokensUrl = tokensUrl(auth.authUrl);
    this.#catalogUrl = catalogUrl(auth.authUrl);
    this.#body = JSON.stringify(authBody(auth));
  }

  get stats(): KeystoneStats {
    return {
      tokensIssued: this.#tokensIssued,
      authFailures: this.#authFailures,
      catalogRequests: this.#catalogRequests,
    };
  }

  /**
   * A valid session, authenticating if there is none (or it expired). Fails with a MetadataError: at once,
   * without asking Keystone, while a refused login or an unusable catalog is being waited out.
   */
  session(deadline: number): Promise<KeystoneSession> {
    const now = Date.now();
    const t = this.#token;
    if (t !== undefined && now < t.expiresAt && usable(t)) {
      if (now >= t.renewAt && this.#pending === undefined && !this.#waiting(now)) {
        // Renew early in the background; the current token keeps serving until it really expires.
        this.#start(now + this.#timeoutMs).catch((err: unknown) => {
          // A refusal is reported by the wait it starts; anything else here.
          if (this.#waiting(Date.now())) return;
          this.#log.warn(
            { upstream: 'keystone', err: describe(err), validUntil: new Date(t.expiresAt).toISOString() },
            'keystone token renewal failed; the current token serves until it expires',
          );
        });
      }
      return Promise.resolve(t);
    }
    if (this.#pending !== undefined) return this.#pending;
    const b = this.#backoff;
    if (b !== undefined && now < b.retryAt) return Promise.reject(waitError(b));
    return this.#start(deadline);
  }

  /**
   * Neutron refused `token` (401): forget it so that the next session() authenticates again. A token that
   * is no longer current (someone already re-authenticated) is ignored, so N concurrent 401s cost one
   * re-authentication.
   */
  invalidate(token: string): void {
    if (this.#token?.token === token) this.#token = undefined;
  }

  /**
   * A configuration reload (SIGHUP) with `auth`. Changed credentials: the wait after a refused login is
   * dropped and a login with them starts at once (a current token serves until it succeeds). The same
   * credentials: a kept token whose catalog lacked the network endpoint has its catalog read again at once
   * (no login); a refused login keeps its wait (the same credentials would be refused again).
   */
  reload(auth: KeystoneAuthOptions): ReloadAction {
    const url = tokensUrl(auth.authUrl);
    const body = JSON.stringify(authBody(auth));
    if (url.href === this.#tokensUrl.href && body === this.#body) {
      if (this.#backoff?.cause !== 'catalog' || this.#pending !== undefined) return 'none';
      this.#start(Date.now() + this.#timeoutMs).catch(() => {
        // Reported by the wait it prolongs.
      });
      return 'catalog';
    }
    this.#auth = auth;
    this.#tokensUrl = url;
    this.#catalogUrl = catalogUrl(auth.authUrl);
    this.#body = body;
    this.#generation++;
    this.#backoff = undefined;
    // A token without a usable catalog came from the old credentials: the new ones may fix the scope.
    if (this.#token !== undefined && !usable(this.#token)) this.#token = undefined;
    this.#log.info(
      { upstream: 'keystone', url: url.href, authType: auth.authType },
      'keystone credentials changed; logging in with them now',
    );
    this.#start(Date.now() + this.#timeoutMs).catch(() => {
      // A refusal starts a wait and is logged there; lookups report anything else.
    });
    return 'login';
  }

  #waiting(now: number): boolean {
    return this.#backoff !== undefined && now < this.#backoff.retryAt;
  }

  /** One try at a time: every caller meanwhile shares it. */
  #start(deadline: number): Promise<KeystoneSession> {
    const p = this.#refresh(deadline).finally(() => {
      if (this.#pending === p) this.#pending = undefined;
    });
    this.#pending = p;
    return p;
  }

  async #refresh(deadline: number): Promise<KeystoneSession> {
    const generation = this.#generation;
    const current = () => generation === this.#generation;
    try {
      const held = this.#token;
      let t: TokenState | undefined;
      // A valid token whose catalog had no network endpoint: read its catalog again rather than log in.
      if (held !== undefined && !usable(held) && Date.now() < held.renewAt)
        t = await this.#rereadCatalog(held, deadline);
      t ??= await this.#login(deadline);
      if (!current()) {
        if (usable(t)) return t;
        throw catalogError(t);
      }
      this.#token = t;
      if (!usable(t)) throw this.#wait('catalog', catalogError(t));
      this.#recovered(t);
      return t;
    } catch (err) {
      if (current() && err instanceof MetadataError && REFUSALS.has(err)) throw this.#wait('refused', err);
      throw err;
    }
  }

  /** Start (or lengthen) the wait before the next try; the first failure of a cause is logged. */
  #wait(cause: WaitCause, error: MetadataError): MetadataError {
    const prev = this.#backoff;
    const failures = (prev?.failures ?? 0) + 1;
    const delay = retryDelay(this.#retry, failures);
    const retryAt = Date.now() + delay;
    const b: Backoff = { cause, failures, retryAt, error };
    this.#backoff = b;
    const fields = {
      ...describe(error),
      waitingFor: cause,
      failures,
      retryInMs: delay,
      retryAt: new Date(retryAt).toISOString(),
    };
    const t = this.#token;
    const serving = t !== undefined && usable(t) && Date.now() < t.expiresAt;
    if (prev?.cause === cause) {
      this.#log.debug(fields, 'keystone: still failing; waiting longer before the next try');
    } else if (cause === 'refused') {
      this.#log.error(
        fields,
        serving
          ? 'keystone refused the [neutron] credentials; the current token serves until it expires, no new login before retryAt (the wait doubles up to auth_retry_max_interval); fix the credentials and send SIGHUP to log in at once'
          : 'keystone refused the [neutron] credentials; no new login before retryAt (the wait doubles up to auth_retry_max_interval), lookups get 503 meanwhile; fix the credentials and send SIGHUP to log in at once',
      );
    } else {
      this.#log.error(
        fields,
        "the keystone token's catalog has no usable network endpoint; the token is kept and its catalog read again at retryAt (the wait doubles up to auth_retry_max_interval), lookups get 503 meanwhile",
      );
    }
    return waitError(b, error.details.elapsedMs);
  }

  #recovered(t: KeystoneSession): void {
    const prev = this.#backoff;
    if (prev === undefined) return;
    this.#backoff = undefined;
    this.#log.info(
      { upstream: 'keystone', neutron: t.networkApi.href, failures: prev.failures },
      prev.cause === 'refused'
        ? 'keystone accepts the credentials again'
        : 'network endpoint found in the catalog',
    );
  }

  /**
   * GET /v3/auth/catalog with a kept token: the same token with the endpoint when the catalog has one now,
   * unchanged when it still has none or Keystone did not answer usefully, undefined when Keystone no longer
   * accepts the token (then a login follows).
   */
  async #rereadCatalog(held: TokenState, deadline: number): Promise<TokenState | undefined> {
    this.#catalogRequests++;
    let res: UpstreamResponse;
    try {
      res = await this.#http.request(
        'keystone',
        this.#catalogUrl,
        { method: 'GET', headers: { 'x-auth-token': held.token, accept: 'application/json' } },
        deadline,
      );
    } catch (err) {
      this.#log.debug({ err: describe(err) }, 'keystone catalog request failed');
      return held;
    }
    if (res.status === 401 || res.status === 404) {
      if (this.#token === held) this.#token = undefined;
      return undefined;
    }
    let catalog: KeystoneTokenBody['token']['catalog'];
    try {
      catalog =
        res.status === 200 ? (JSON.parse(res.body) as { catalog?: typeof catalog })?.catalog : undefined;
    } catch {
      catalog = undefined;
    }
    if (catalog === undefined) {
      this.#log.debug({ upstream: 'keystone', status: res.status }, 'keystone catalog request failed');
      return held;
    }
    const found = findEndpoint(catalog, this.#endpoint);
    if (typeof found !== 'string') return { ...held, catalogProblem: found.problem };
    return { ...held, networkApi: apiBase(found), catalogProblem: undefined };
  }

  async #login(deadline: number): Promise<TokenState> {
    const started = Date.now();
    const where = { upstream: 'keystone', url: this.#tokensUrl.href };
    const res = await this.#http.request(
      'keystone',
      this.#tokensUrl,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: this.#body,
      },
      deadline,
    );
    if (res.status !== 201 && res.status !== 200) {
      this.#authFailures++;
      const reason =
        res.status === 401
          ? 'authentication refused: check the credentials in [neutron]'
          : res.status >= 500
            ? 'keystone error'
            : 'authentication request rejected';
      const err = unavailable(
        { ...where, status: res.status, keystoneMessage: keystoneMessage(res.body, this.#auth) },
        reason,
        started,
      );
      if (res.status >= 400 && res.status < 500) REFUSALS.add(err);
      throw err;
    }
    const token = res.headers['x-subject-token'];
    if (typeof token !== 'string' || token === '')
      throw unavailable({ ...where, status: res.status }, 'no X-Subject-Token in the answer', started);
    // Keystone issued a token, whatever its body turns out to be.
    this.#tokensIssued++;
    let doc: KeystoneTokenBody;
    try {
      doc = JSON.parse(res.body) as KeystoneTokenBody;
    } catch {
      throw unavailable({ ...where, status: res.status }, 'token body is not JSON', started);
    }
    const expires = Date.parse(doc?.token?.expires_at ?? '');
    if (!Number.isFinite(expires))
      throw unavailable({ ...where, status: res.status }, 'token without a valid expires_at', started);
    // Measure the lifetime on Keystone's clock so that clock skew between hosts does not matter.
    const issued = Date.parse(doc.token.issued_at ?? '');
    const now = Date.now();
    const lifetime = Number.isFinite(issued) ? expires - issued : expires - now;
    const found = this.#endpoint.endpointOverride
      ? this.#endpoint.endpointOverride
      : findEndpoint(doc.token.catalog, this.#endpoint);
    const networkApi = typeof found === 'string' ? apiBase(found) : undefined;
    this.#log.info(
      {
        upstream: 'keystone',
        expiresAt: doc.token.expires_at,
        neutron: networkApi?.href ?? null,
        interface: this.#endpoint.interface,
        region: this.#endpoint.regionName ?? null,
        authType: this.#auth.authType,
      },
      'keystone token obtained',
    );
    return {
      token,
      expiresAt: now + lifetime,
      renewAt: now + lifetime - Math.min(RENEW_BEFORE_MS, lifetime / 4),
      networkApi,
      ...(typeof found === 'string' ? {} : { catalogProblem: found.problem }),
    };
  }
}

/** The 503 of a token whose catalog has no usable network endpoint. */
function catalogError(t: TokenState): MetadataError {
  return unavailable(
    { upstream: 'keystone', validUntil: new Date(t.expiresAt).toISOString() },
    t.catalogProblem ?? 'no network endpoint in the catalog',
    Date.now(),
  );
}

/** What a lookup gets while a wait lasts: the failure that started it, answered at once. */
function waitError(b: Backoff, elapsedMs: unknown = 0): MetadataError {
  return new MetadataError(b.error.code, {
    ...b.error.details,
    elapsedMs,
    retryAt: new Date(b.retryAt).toISOString(),
  });
}

interface CatalogEndpoint {
  readonly interface?: string;
  readonly region?: string;
  readonly region_id?: string;
  readonly url?: string;
}

interface KeystoneTokenBody {
  readonly token: {
    readonly expires_at?: string;
    readonly issued_at?: string;
    readonly catalog?: ReadonlyArray<{
      readonly type?: string;
      readonly endpoints?: readonly CatalogEndpoint[];
    }>;
  };
}

/**
 * The network endpoint for an interface and region from a v3 catalog, or why there is none. Without a
 * region the first endpoint with the interface wins (keystoneauth does the same).
 */
export function findEndpoint(
  catalog: KeystoneTokenBody['token']['catalog'],
  selection: EndpointSelection,
): string | { readonly problem: string } {
  const services = (catalog ?? []).filter((s) => s.type === 'network');
  const region = selection.regionName;
  for (const service of services) {
    for (const e of service.endpoints ?? []) {
      if (e.interface !== selection.interface || typeof e.url !== 'string') continue;
      if (region && e.region_id !== region && e.region !== region) continue;
      return e.url;
    }
  }
  return {
    problem:
      services.length === 0
        ? 'no network service in the catalog (is the token project-scoped?)'
        : `no network endpoint for interface ${selection.interface}${region ? ` in region ${region}` : ''}`,
  };
}

/** findEndpoint's URL, or a 503 MetadataError saying why there is none. */
export function selectEndpoint(
  catalog: KeystoneTokenBody['token']['catalog'],
  selection: EndpointSelection,
  started = Date.now(),
): string {
  const found = findEndpoint(catalog, selection);
  if (typeof found === 'string') return found;
  throw unavailable({ upstream: 'keystone' }, found.problem, started);
}

/** Neutron's v2.0 API base for an endpoint URL (catalog URLs normally lack the version). */
export function apiBase(endpoint: string): URL {
  const u = new URL(endpoint);
  const path = u.pathname.replace(/\/+$/, '');
  u.pathname = path.endsWith('/v2.0') ? path : `${path}/v2.0`;
  u.search = '';
  u.hash = '';
  return u;
}

/** POST target for an auth_url written with or without /v3 (keystoneauth accepts both). */
export function tokensUrl(authUrl: string): URL {
  return v3Url(authUrl, 'auth/tokens');
}

/** GET target for a token's current catalog. */
export function catalogUrl(authUrl: string): URL {
  return v3Url(authUrl, 'auth/catalog');
}

function v3Url(authUrl: string, resource: string): URL {
  const u = new URL(authUrl);
  let path = u.pathname.replace(/\/+$/, '');
  if (!/\/v3$/.test(path)) path = `${path}/v3`;
  u.pathname = `${path}/${resource}`;
  return u;
}

function authBody(a: KeystoneAuthOptions): unknown {
  const domain = (id?: string, name?: string) => (id ? { id } : name ? { name } : undefined);
  if (a.authType === 'v3applicationcredential') {
    const cred: Record<string, unknown> = { secret: a.applicationCredentialSecret ?? '' };
    if (a.applicationCredentialId) cred.id = a.applicationCredentialId;
    else {
      cred.name = a.applicationCredentialName;
      cred.user = a.userId
        ? { id: a.userId }
        : { name: a.username, domain: domain(a.userDomainId, a.userDomainName) };
    }
    return { auth: { identity: { methods: ['application_credential'], application_credential: cred } } };
  }
  const user = a.userId
    ? { id: a.userId, password: a.password ?? '' }
    : { name: a.username, domain: domain(a.userDomainId, a.userDomainName), password: a.password ?? '' };
  const project = a.projectId
    ? { id: a.projectId }
    : { name: a.projectName, domain: domain(a.projectDomainId, a.projectDomainName) };
  return {
    auth: { identity: { methods: ['password'], password: { user } }, scope: { project } },
  };
}

/** Keystone's error message (for the log), with any secret we sent scrubbed in case it is echoed. */
function keystoneMessage(body: string, a: KeystoneAuthOptions): string | undefined {
  let msg: unknown;
  try {
    msg = (JSON.parse(body) as { error?: { message?: unknown } })?.error?.message;
  } catch {
    return undefined;
  }
  if (typeof msg !== 'string') return undefined;
  return scrub(msg.slice(0, 300), [a.password, a.applicationCredentialSecret]);
}

export function scrub(text: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('[redacted]');
  return out;
}

/** What a log line may say about a failure: code, message and details, never a cause's internals. */
export function describe(err: unknown): Record<string, unknown> {
  if (err instanceof MetadataError) return { code: err.code, message: err.message, ...err.details };
  return { message: err instanceof Error ? err.message : String(err) };
}

export function isUnavailable(err: unknown): err is MetadataError {
  return err instanceof MetadataError && err.code === 'MDA_ERR_RESOLVER_UNAVAILABLE';
}
