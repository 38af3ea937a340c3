/*
 * Keystone v3 authentication for the Neutron resolver, following keystoneauth's behaviour and option
 * names: password (user by name + domain or by id, project by name + domain or by id) or application
 * credential (by id, or by name + user). One token is shared by every lookup and reused until shortly
 * before it expires (then renewed in the background while the old one still serves); concurrent callers
 * needing a token share one POST /v3/auth/tokens. The Neutron endpoint comes from the token's catalog
 * (service type "network", interface, region) unless an endpoint override is configured.
 *
 * The password, the application credential secret and the token never leave this file except in the
 * request body / X-Auth-Token header: not in logs, not in errors.
 */
import { type Logger, MetadataError } from '@nmp/common';
import { type UpstreamHttp, unavailable } from './upstream-http.js';

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

/** keystoneauth re-authenticates when a token has less than this left (MIN_TOKEN_LIFE_SECONDS). */
const RENEW_BEFORE_MS = 120_000;

export interface KeystoneStats {
  readonly tokensIssued: number;
  readonly authFailures: number;
}

export class KeystoneClient {
  readonly #http: UpstreamHttp;
  readonly #auth: KeystoneAuthOptions;
  readonly #endpoint: EndpointSelection;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #tokensUrl: URL;
  readonly #body: string;
  #session: KeystoneSession | undefined;
  #pending: Promise<KeystoneSession> | undefined;
  #tokensIssued = 0;
  #authFailures = 0;

  /** `timeoutMs` bounds a background token renewal (a lookup's own deadline bounds the others). */
  constructor(
    http: UpstreamHttp,
    auth: KeystoneAuthOptions,
    endpoint: EndpointSelection,
    log: Logger,
    timeoutMs: number,
  ) {
    this.#http = http;
    this.#auth = auth;
    this.#endpoint = endpoint;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
    this.#tokensUrl = tokensUrl(auth.authUrl);
    this.#body = JSON.stringify(authBody(auth));
  }

  get stats(): KeystoneStats {
    return { tokensIssued: this.#tokensIssued, authFailures: this.#authFailures };
  }

  /** A valid session, authenticating if there is none (or it expired). Fails with a MetadataError. */
  session(deadline: number): Promise<KeystoneSession> {
    const now = Date.now();
    const s = this.#session;
    if (s !== undefined && now < s.expiresAt) {
      if (now >= s.renewAt && this.#pending === undefined) {
        // Renew early in the background; the current token keeps serving until it really expires.
        this.#authenticate(now + this.#timeoutMs).catch((err: unknown) => {
          this.#log.warn(
            { upstream: 'keystone', err: describe(err), validUntil: new Date(s.expiresAt).toISOString() },
            'keystone token renewal failed; the current token serves until it expires',
          );
        });
      }
      return Promise.resolve(s);
    }
    return this.#pending ?? this.#authenticate(deadline);
  }

  /**
   * Neutron refused `token` (401): forget it so that the next session() authenticates again. A token that
   * is no longer current (someone already re-authenticated) is ignored, so N concurrent 401s cost one
   * re-authentication.
   */
  invalidate(token: string): void {
    if (this.#session?.token === token) this.#session = undefined;
  }

  #authenticate(deadline: number): Promise<KeystoneSession> {
    const p = this.#issue(deadline).finally(() => {
      if (this.#pending === p) this.#pending = undefined;
    });
    this.#pending = p;
    return p;
  }

  async #issue(deadline: number): Promise<KeystoneSession> {
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
      throw unavailable(
        { ...where, status: res.status, keystoneMessage: keystoneMessage(res.body, this.#auth) },
        reason,
        started,
      );
    }
    const token = res.headers['x-subject-token'];
    if (typeof token !== 'string' || token === '')
      throw unavailable({ ...where, status: res.status }, 'no X-Subject-Token in the answer', started);
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
    const networkApi = this.#endpoint.endpointOverride
      ? apiBase(this.#endpoint.endpointOverride)
      : apiBase(selectEndpoint(doc.token.catalog, this.#endpoint, started));
    const session: KeystoneSession = {
      token,
      expiresAt: now + lifetime,
      renewAt: now + lifetime - Math.min(RENEW_BEFORE_MS, lifetime / 4),
      networkApi,
    };
    this.#session = session;
    this.#tokensIssued++;
    this.#log.info(
      {
        upstream: 'keystone',
        expiresAt: doc.token.expires_at,
        neutron: networkApi.href,
        interface: this.#endpoint.interface,
        region: this.#endpoint.regionName ?? null,
        authType: this.#auth.authType,
      },
      'keystone token obtained',
    );
    return session;
  }
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
 * The network endpoint for an interface and region from a v3 catalog. Without a region the first
 * endpoint with the interface wins (keystoneauth does the same).
 */
export function selectEndpoint(
  catalog: KeystoneTokenBody['token']['catalog'],
  selection: EndpointSelection,
  started = Date.now(),
): string {
  const services = (catalog ?? []).filter((s) => s.type === 'network');
  const region = selection.regionName;
  for (const service of services) {
    for (const e of service.endpoints ?? []) {
      if (e.interface !== selection.interface || typeof e.url !== 'string') continue;
      if (region && e.region_id !== region && e.region !== region) continue;
      return e.url;
    }
  }
  const reason =
    services.length === 0
      ? 'no network service in the catalog (is the token project-scoped?)'
      : `no network endpoint for interface ${selection.interface}${region ? ` in region ${region}` : ''}`;
  throw unavailable({ upstream: 'keystone' }, reason, started);
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
  const u = new URL(authUrl);
  let path = u.pathname.replace(/\/+$/, '');
  if (!/\/v3$/.test(path)) path = `${path}/v3`;
  u.pathname = `${path}/auth/tokens`;
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
