/*
 * The Keystone v3 half of the fake: POST /v3/auth/tokens with the password and application_credential
 * methods, project scope by id or by name + domain, tokens with an expiry, and a service catalog whose
 * "network" service has one endpoint per region and interface (or no network service at all, as in a cloud
 * where neutron's endpoint was never registered), and GET /v3/auth/catalog for a token's current catalog.
 * Only what a Keystone client of the metadata agent touches is modelled, but that part follows Keystone's
 * wire format (201, X-Subject-Token, the token body, error bodies; checked against Debian's keystone).
 */
import { randomBytes, randomUUID } from 'node:crypto';

export type EndpointInterface = 'public' | 'internal' | 'admin';

export interface FakeDomain {
  readonly id: string;
  readonly name: string;
}

export interface FakeProject {
  readonly id: string;
  readonly name: string;
  /** Domain id; "default" when absent. */
  readonly domainId?: string;
}

export interface FakeUser {
  /** Generated from the name when absent. */
  readonly id?: string;
  readonly name: string;
  readonly password: string;
  /** Domain id; "default" when absent. */
  readonly domainId?: string;
  /** Role names the user holds on every project (default ["admin"]). */
  readonly roles?: readonly string[];
}

export interface FakeApplicationCredential {
  readonly id: string;
  readonly name?: string;
  readonly secret: string;
  /** Name of the owning user (must exist in users). */
  readonly userName: string;
  /** Project the credential is scoped to. */
  readonly projectId: string;
  /** Roles the credential carries (default: the user's). */
  readonly roles?: readonly string[];
}

export interface IssuedToken {
  readonly id: string;
  readonly userId: string;
  readonly projectId: string | undefined;
  readonly roles: readonly string[];
  readonly issuedAt: number;
  expiresAt: number;
  revoked: boolean;
}

export interface KeystoneSetup {
  readonly domains: readonly FakeDomain[];
  readonly projects: readonly FakeProject[];
  readonly users: readonly FakeUser[];
  readonly applicationCredentials: readonly FakeApplicationCredential[];
  readonly regions: readonly string[];
  readonly interfaces: readonly EndpointInterface[];
  readonly tokenTtlSeconds: number;
}

/** Credentials the fake knows when none are given (also what the CLI serves). */
export const FAKE_DEFAULTS = {
  username: 'nmp-agent',
  password: 'fake-password',
  userDomainName: 'Default',
  projectName: 'service',
  projectId: 'f0e1d2c3b4a5968778695a4b3c2d1e0f',
  projectDomainName: 'Default',
  applicationCredentialId: 'fake-appcred-id',
  applicationCredentialSecret: 'fake-appcred-secret',
  region: 'RegionOne',
} as const;

/**
 * The agent's flags for the neutron resolver against a fake at `authUrl`, logging in as FAKE_DEFAULTS's
 * user (the password goes in the environment, NMP_NEUTRON__PASSWORD, or a file: never in argv).
 */
export function fakeNeutronResolverArgs(authUrl: string): string[] {
  return [
    '--resolver',
    'neutron',
    '--neutron-auth-url',
    authUrl,
    '--neutron-username',
    FAKE_DEFAULTS.username,
    '--neutron-user-domain-name',
    FAKE_DEFAULTS.userDomainName,
    '--neutron-project-name',
    FAKE_DEFAULTS.projectName,
    '--neutron-project-domain-name',
    FAKE_DEFAULTS.projectDomainName,
  ];
}

export class KeystoneError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }

  body(): string {
    const title =
      this.status === 400
        ? 'Bad Request'
        : this.status === 401
          ? 'Unauthorized'
          : this.status === 403
            ? 'Forbidden'
            : 'Error';
    return JSON.stringify({ error: { code: this.status, message: this.message, title } });
  }
}

const UNAUTHORIZED = 'The request you have made requires authentication.';

/** The catalog entry of one endpoint, as the fake builds URLs for it. */
export function endpointPath(region: string, iface: EndpointInterface): string {
  return `/networking/${encodeURIComponent(region)}/${iface}`;
}

export class FakeKeystone {
  readonly tokens = new Map<string, IssuedToken>();
  /** False: the catalog has no "network" service (neutron's endpoint not registered). */
  networkInCatalog = true;
  #setup: KeystoneSetup;

  constructor(setup: KeystoneSetup) {
    this.#setup = setup;
  }

  get setup(): KeystoneSetup {
    return this.#setup;
  }

  /** Handle the JSON body of POST /v3/auth/tokens. Returns the token and the response body. */
  issue(rawBody: string, baseUrl: string, now: number): { token: IssuedToken; body: string } {
    let doc: unknown;
    try {
      doc = JSON.parse(rawBody);
    } catch {
      throw new KeystoneError(400, 'Expecting to find auth in request body. The server could not comply...');
    }
    const auth = (doc as { auth?: Record<string, unknown> })?.auth;
    const identity = auth?.identity as Record<string, unknown> | undefined;
    const methods = identity?.methods;
    if (!identity || !Array.isArray(methods) || methods.length === 0)
      throw new KeystoneError(400, "'identity' is a required property");

    let user: FakeUser;
    let projectId: string | undefined;
    let roles: readonly string[];
    let appCred: FakeApplicationCredential | undefined;
    if (methods.includes('application_credential')) {
      appCred = this.#checkApplicationCredential(identity.application_credential);
      if (auth?.scope !== undefined) throw new KeystoneError(401, UNAUTHORIZED);
      user = this.#userByName(appCred.userName, undefined) ?? fail401();
      projectId = appCred.projectId;
      roles = appCred.roles ?? user.roles ?? ['admin'];
    } else if (methods.includes('password')) {
      user = this.#checkPassword(identity.password);
      projectId = this.#scopeProject(auth?.scope);
      roles = user.roles ?? ['admin'];
    } else {
      throw new KeystoneError(401, UNAUTHORIZED);
    }

    const token: IssuedToken = {
      id: `gAAAAA${randomBytes(48).toString('base64url')}`,
      userId: userId(user),
      projectId,
      roles,
      issuedAt: now,
      expiresAt: now + this.#setup.tokenTtlSeconds * 1000,
      revoked: false,
    };
    this.tokens.set(token.id, token);
    const project = projectId ? this.#setup.projects.find((p) => p.id === projectId) : undefined;
    const domainOf = (id: string | undefined) => this.#domainById(id ?? 'default');
    const body = {
      token: {
        methods: appCred ? ['application_credential'] : ['password'],
        user: {
          id: userId(user),
          name: user.name,
          domain: domainOf(user.domainId),
          password_expires_at: null,
        },
        audit_ids: [randomBytes(16).toString('base64url').slice(0, 22)],
        issued_at: keystoneTime(token.issuedAt),
        expires_at: keystoneTime(token.expiresAt),
        ...(project
          ? {
              project: { id: project.id, name: project.name, domain: domainOf(project.domainId) },
              is_domain: false,
              roles: roles.map((r) => ({ id: roleId(r), name: r })),
              catalog: this.#catalog(baseUrl),
            }
          : {}),
        ...(appCred
          ? { application_credential: { id: appCred.id, name: appCred.name ?? appCred.id, restricted: true } }
          : {}),
      },
    };
    return { token, body: JSON.stringify(body) };
  }

  /**
   * GET /v3/auth/catalog: the current catalog for a valid token's project (Keystone answers 403 for an
   * unscoped token). Throws KeystoneError 401 for a missing, unknown or expired token.
   */
  catalogFor(id: string | undefined, baseUrl: string, now: number): string {
    const token = this.validate(id, now);
    if (!token) throw new KeystoneError(401, UNAUTHORIZED);
    if (token.projectId === undefined)
      throw new KeystoneError(403, 'You are not authorized to perform the requested action.');
    return JSON.stringify({ catalog: this.#catalog(baseUrl), links: { self: `${baseUrl}/v3/auth/catalog` } });
  }

  /** The token behind an X-Auth-Token value, if it is valid now. */
  validate(id: string | undefined, now: number): IssuedToken | undefined {
    if (id === undefined || id === '') return undefined;
    const token = this.tokens.get(id);
    if (!token || token.revoked || token.expiresAt <= now) return undefined;
    return token;
  }

  expireAll(now: number): void {
    for (const t of this.tokens.values()) t.expiresAt = Math.min(t.expiresAt, now);
  }

  #catalog(baseUrl: string): unknown[] {
    const endpoints = [];
    for (const region of this.#setup.regions) {
      for (const iface of this.#setup.interfaces) {
        endpoints.push({
          id: randomUUID().replace(/-/g, ''),
          interface: iface,
          region,
          region_id: region,
          url: `${baseUrl}${endpointPath(region, iface)}`,
        });
      }
    }
    const region = this.#setup.regions[0] ?? FAKE_DEFAULTS.region;
    return [
      // A decoy first, so that a client picking "the first service" instead of the network one fails.
      {
        type: 'compute',
        name: 'nova',
        id: 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0',
        endpoints: [
          { id: 'e1', interface: 'public', region, region_id: region, url: `${baseUrl}/compute/v2.1` },
        ],
      },
      ...(this.networkInCatalog
        ? [{ type: 'network', name: 'neutron', id: 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0', endpoints }]
        : []),
      {
        type: 'identity',
        name: 'keystone',
        id: 'a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0',
        endpoints: [{ id: 'e2', interface: 'public', region, region_id: region, url: `${baseUrl}/v3` }],
      },
    ];
  }

  #checkPassword(method: unknown): FakeUser {
    const u = (method as { user?: Record<string, unknown> })?.user;
    if (!u || typeof u.password !== 'string') throw new KeystoneError(400, "'user' is a required property");
    let user: FakeUser | undefined;
    if (typeof u.id === 'string') user = this.#setup.users.find((x) => userId(x) === u.id);
    else if (typeof u.name === 'string') {
      const domainId = this.#domainRef(u.domain);
      if (domainId === undefined)
        throw new KeystoneError(400, 'Expecting to find domain in user. The server could not comply...');
      user = this.#userByName(u.name, domainId);
    } else throw new KeystoneError(400, 'Expecting to find id or name in user.');
    if (!user || user.password !== u.password) throw new KeystoneError(401, UNAUTHORIZED);
    return user;
  }

  #checkApplicationCredential(method: unknown): FakeApplicationCredential {
    const a = method as Record<string, unknown> | undefined;
    if (!a || typeof a.secret !== 'string') throw new KeystoneError(400, "'secret' is a required property");
    let cred: FakeApplicationCredential | undefined;
    if (typeof a.id === 'string') cred = this.#setup.applicationCredentials.find((c) => c.id === a.id);
    else if (typeof a.name === 'string') {
      const owner = a.user as Record<string, unknown> | undefined;
      const ownerName =
        typeof owner?.id === 'string'
          ? this.#setup.users.find((x) => userId(x) === owner.id)?.name
          : typeof owner?.name === 'string'
            ? owner.name
            : undefined;
      if (ownerName === undefined)
        throw new KeystoneError(400, 'Could not find user for application credential.');
      cred = this.#setup.applicationCredentials.find((c) => c.name === a.name && c.userName === ownerName);
    } else throw new KeystoneError(400, 'Expecting to find id or name in application_credential.');
    if (!cred || cred.secret !== a.secret) throw new KeystoneError(401, UNAUTHORIZED);
    return cred;
  }

  #scopeProject(scope: unknown): string | undefined {
    if (scope === undefined) return undefined;
    const p = (scope as { project?: Record<string, unknown> })?.project;
    if (!p) throw new KeystoneError(400, 'Only project scope is supported by this fake.');
    let project: FakeProject | undefined;
    if (typeof p.id === 'string') project = this.#setup.projects.find((x) => x.id === p.id);
    else if (typeof p.name === 'string') {
      const domainId = this.#domainRef(p.domain);
      if (domainId === undefined)
        throw new KeystoneError(400, 'Expecting to find domain in project. The server could not comply...');
      project = this.#setup.projects.find((x) => x.name === p.name && (x.domainId ?? 'default') === domainId);
    }
    if (!project) throw new KeystoneError(401, UNAUTHORIZED);
    return project.id;
  }

  /** Domain id from {"id": ...} or {"name": ...}; undefined when absent or unknown. */
  #domainRef(ref: unknown): string | undefined {
    const d = ref as { id?: unknown; name?: unknown } | undefined;
    if (typeof d?.id === 'string')
      return this.#setup.domains.find((x) => x.id === d.id)?.id ?? `unknown:${d.id}`;
    if (typeof d?.name === 'string')
      return this.#setup.domains.find((x) => x.name === d.name)?.id ?? `unknown:${d.name}`;
    return undefined;
  }

  #domainById(id: string): FakeDomain {
    return this.#setup.domains.find((d) => d.id === id) ?? { id, name: id };
  }

  #userByName(name: string, domainId: string | undefined): FakeUser | undefined {
    return this.#setup.users.find(
      (u) => u.name === name && (domainId === undefined || (u.domainId ?? 'default') === domainId),
    );
  }
}

function fail401(): never {
  throw new KeystoneError(401, UNAUTHORIZED);
}

function userId(u: FakeUser): string {
  return u.id ?? `u-${Buffer.from(u.name).toString('hex')}`;
}

function roleId(name: string): string {
  return `r-${Buffer.from(name).toString('hex')}`;
}

/** Keystone's timestamp shape: ISO 8601 with microseconds and Z. */
function keystoneTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
