/*
 * A fake OpenStack control plane (Keystone v3 + Neutron ports) on one real HTTP(S) listener, for tests
 * and benchmarks of the metadata agent's Neutron resolver. It speaks the real wire protocol, counts every
 * call, and can be told to expire tokens, fail (any status, connection reset, no answer) and be slow.
 *
 *   POST /v3/auth/tokens                        -> 201, X-Subject-Token, {"token": {..., "catalog": [...]}}
 *   GET  /v3/auth/catalog                       -> {"catalog": [...]}      (X-Auth-Token required)
 *   GET  /v3                                    -> version document
 *   GET  /v2.0/ports?...                        -> {"ports": [...]}        (X-Auth-Token required)
 *   GET  /networking/<region>/<iface>/v2.0/ports   the same, reached through a catalog endpoint
 */
import { randomUUID } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { formatHostPort } from '@nmp/common';
import {
  type EndpointInterface,
  FAKE_DEFAULTS,
  type FakeApplicationCredential,
  type FakeDomain,
  FakeKeystone,
  type FakeProject,
  type FakeUser,
  type IssuedToken,
  KeystoneError,
} from './keystone.js';
import { type FakePort, NeutronError, parsePortQuery, portMatches, projectPort } from './neutron-ports.js';

export type FakeService = 'keystone' | 'neutron' | 'all';
/** An HTTP status to answer with, 'reset' to destroy the connection, 'hang' to never answer. */
export type FakeFailure = number | 'reset' | 'hang';

export interface FakeOpenStackOptions {
  readonly ports?: readonly FakePort[];
  readonly users?: readonly FakeUser[];
  readonly projects?: readonly FakeProject[];
  readonly domains?: readonly FakeDomain[];
  readonly applicationCredentials?: readonly FakeApplicationCredential[];
  /** Regions in the catalog (default ["RegionOne"]). */
  readonly regions?: readonly string[];
  /** Interfaces each region has a network endpoint for (default public, internal, admin). */
  readonly interfaces?: readonly EndpointInterface[];
  /** Token lifetime (default 3600 s). */
  readonly tokenTtlSeconds?: number;
  /** False: the catalog has no "network" service (default true; setNetworkInCatalog changes it). */
  readonly networkInCatalog?: boolean;
  /** Delay before every Neutron answer (default 0). */
  readonly latencyMs?: number;
  /** Delay before every Keystone answer (default 0). */
  readonly keystoneLatencyMs?: number;
  readonly host?: string;
  /** Port to listen on (default 0: ephemeral). */
  readonly port?: number;
  /** Serve HTTPS with this key and certificate. */
  readonly tls?: { readonly key: string | Buffer; readonly cert: string | Buffer };
}

export interface FakeCounts {
  /** POST /v3/auth/tokens, whatever the outcome. */
  tokenRequests: number;
  /** Tokens issued (201). */
  tokens: number;
  /** GET /v3/auth/catalog, whatever the outcome. */
  catalogRequests: number;
  /** GET .../v2.0/ports, whatever the outcome. */
  ports: number;
  /** Ports requests refused with 401 (no, unknown or expired token). */
  portsUnauthorized: number;
  /** Ports requests that filter on an address (fixed_ips or mac_address): the per-instance lookups. */
  portLookups: number;
  /** Ports requests that filter on device_owner (router interface lookups). */
  routerLookups: number;
  /** Ports requests per catalog endpoint ("RegionOne/internal") or "direct" for /v2.0 at the root. */
  byEndpoint: Record<string, number>;
  /** TCP (or TLS) connections accepted. */
  connections: number;
}

export interface FakeOpenStack {
  /** Listen (again, on the same port after close() unless one is given). Resolves to the base URL. */
  listen(port?: number): Promise<string>;
  /** Stop listening and drop every connection, answered or not. */
  close(): Promise<void>;
  /** Base URL, e.g. http://127.0.0.1:43210 (valid after listen()). */
  readonly url: string;
  /** Keystone auth_url: `${url}/v3`. */
  readonly authUrl: string;
  readonly port: number;
  /** URL the catalog gives for a region and interface. */
  endpointUrl(region: string, iface: EndpointInterface): string;
  readonly counts: FakeCounts;
  resetCounts(): void;
  /** Raw query strings of the last 1,000 ports requests, oldest first. */
  readonly portQueries: readonly string[];
  /** Every token issued so far (to prove none of them reaches a log). */
  issuedTokens(): string[];
  /** Make every token issued so far invalid (Neutron answers 401 until the client re-authenticates). */
  expireAllTokens(): void;
  /** Register (true) or remove (false) neutron's "network" service in the catalog, for new answers. */
  setNetworkInCatalog(present: boolean): void;
  /** Fail requests to a service until setFailure(null, service) or setFailure('reset'?...). */
  setFailure(failure: FakeFailure | null, service?: FakeService): void;
  setLatency(ms: number, service?: FakeService): void;
  setPorts(ports: readonly FakePort[]): void;
  readonly ports: readonly FakePort[];
  addPort(port: FakePort): void;
  removePort(id: string): void;
  /** Give a port (by id) to another instance (and optionally project). */
  movePort(id: string, deviceId: string, projectId?: string): void;
}

const JSON_TYPE = 'application/json';
const NEUTRON_PATH = /^(?:\/networking\/([^/]+)\/(public|internal|admin))?\/v2\.0\/ports\/?$/;

export function createFakeOpenStack(options: FakeOpenStackOptions = {}): FakeOpenStack {
  const domains = options.domains ?? [{ id: 'default', name: 'Default' }];
  const projects = options.projects ?? [{ id: FAKE_DEFAULTS.projectId, name: FAKE_DEFAULTS.projectName }];
  const users = options.users ?? [{ name: FAKE_DEFAULTS.username, password: FAKE_DEFAULTS.password }];
  const applicationCredentials = options.applicationCredentials ?? [
    {
      id: FAKE_DEFAULTS.applicationCredentialId,
      name: 'nmp-agent-appcred',
      secret: FAKE_DEFAULTS.applicationCredentialSecret,
      userName: users[0]?.name ?? FAKE_DEFAULTS.username,
      projectId: projects[0]?.id ?? FAKE_DEFAULTS.projectId,
    },
  ];
  const keystone = new FakeKeystone({
    domains,
    projects,
    users,
    applicationCredentials,
    regions: options.regions ?? [FAKE_DEFAULTS.region],
    interfaces: options.interfaces ?? ['public', 'internal', 'admin'],
    tokenTtlSeconds: options.tokenTtlSeconds ?? 3600,
  });
  keystone.networkInCatalog = options.networkInCatalog ?? true;

  let ports: FakePort[] = normalisePorts(options.ports ?? []);
  const latency = { keystone: options.keystoneLatencyMs ?? 0, neutron: options.latencyMs ?? 0 };
  const failure: { keystone: FakeFailure | null; neutron: FakeFailure | null } = {
    keystone: null,
    neutron: null,
  };
  const counts: FakeCounts = emptyCounts();
  const portQueries: string[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let server: Server | undefined;
  let boundPort = options.port ?? 0;
  const host = options.host ?? '127.0.0.1';
  const scheme = options.tls ? 'https' : 'http';
  const baseUrl = () => `${scheme}://${formatHostPort(host, boundPort)}`;

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms <= 0) return resolve();
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  /** Apply the failure mode; true when the request has been dealt with. */
  const fail = (which: 'keystone' | 'neutron', req: IncomingMessage, res: ServerResponse): boolean => {
    const f = failure[which];
    if (f === null) return false;
    if (f === 'reset') {
      req.socket.destroy();
    } else if (f === 'hang') {
      // Never answered; close() destroys the socket.
    } else {
      send(res, f, JSON.stringify({ error: { code: f, message: 'Injected failure', title: 'Failure' } }));
    }
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname;
    if (path === '/v3/auth/tokens' || path === '/v3/auth/tokens/') {
      if (req.method !== 'POST') return send(res, 405, '{"error":{"code":405,"title":"Method Not Allowed"}}');
      counts.tokenRequests++;
      const body = await readBody(req);
      await wait(latency.keystone);
      if (fail('keystone', req, res)) return;
      try {
        const { token, body: out } = keystone.issue(body, baseUrl(), Date.now());
        counts.tokens++;
        res.setHeader('X-Subject-Token', token.id);
        return send(res, 201, out);
      } catch (err) {
        if (err instanceof KeystoneError) {
          if (err.status === 401) res.setHeader('WWW-Authenticate', `Keystone uri="${baseUrl()}/v3"`);
          return send(res, err.status, err.body());
        }
        throw err;
      }
    }
    if (path === '/v3/auth/catalog' || path === '/v3/auth/catalog/') {
      if (req.method !== 'GET') return send(res, 405, '{"error":{"code":405,"title":"Method Not Allowed"}}');
      counts.catalogRequests++;
      await wait(latency.keystone);
      if (fail('keystone', req, res)) return;
      const header = req.headers['x-auth-token'];
      try {
        return send(
          res,
          200,
          keystone.catalogFor(typeof header === 'string' ? header : undefined, baseUrl(), Date.now()),
        );
      } catch (err) {
        if (err instanceof KeystoneError) {
          if (err.status === 401) res.setHeader('WWW-Authenticate', `Keystone uri="${baseUrl()}/v3"`);
          return send(res, err.status, err.body());
        }
        throw err;
      }
    }
    if (path === '/v3' || path === '/v3/') {
      return send(
        res,
        200,
        JSON.stringify({
          version: {
            id: 'v3.14',
            status: 'stable',
            updated: '2020-04-07T00:00:00Z',
            links: [{ rel: 'self', href: `${baseUrl()}/v3/` }],
            'media-types': [{ base: JSON_TYPE, type: 'application/vnd.openstack.identity-v3+json' }],
          },
        }),
      );
    }
    const m = NEUTRON_PATH.exec(path);
    if (m) {
      counts.ports++;
      const endpoint = m[1] ? `${decodeURIComponent(m[1])}/${m[2]}` : 'direct';
      counts.byEndpoint[endpoint] = (counts.byEndpoint[endpoint] ?? 0) + 1;
      const search = url.search.slice(1);
      portQueries.push(search);
      if (portQueries.length > 1000) portQueries.shift();
      const params = new URLSearchParams(search);
      if (params.has('fixed_ips') || params.has('mac_address')) counts.portLookups++;
      if (params.has('device_owner')) counts.routerLookups++;
      await wait(latency.neutron);
      if (fail('neutron', req, res)) return;
      if (req.method !== 'GET')
        return send(res, 405, new NeutronError(405, 'HTTPMethodNotAllowed', '').body());
      const header = req.headers['x-auth-token'];
      const token = keystone.validate(typeof header === 'string' ? header : undefined, Date.now());
      if (!token) {
        counts.portsUnauthorized++;
        res.setHeader('WWW-Authenticate', `Keystone uri="${baseUrl()}/v3"`);
        return send(
          res,
          401,
          JSON.stringify({
            error: {
              code: 401,
              title: 'Unauthorized',
              message: 'The request you have made requires authentication.',
            },
          }),
        );
      }
      try {
        const q = parsePortQuery(search);
        const visible = seesAllProjects(token) ? ports : ports.filter((p) => ownerOf(p) === token.projectId);
        const out = visible.filter((p) => portMatches(p, q)).map((p) => projectPort(p, q.fields));
        return send(res, 200, JSON.stringify({ ports: out }));
      } catch (err) {
        if (err instanceof NeutronError) return send(res, err.status, err.body());
        throw err;
      }
    }
    return send(
      res,
      404,
      '{"error":{"code":404,"title":"Not Found","message":"The resource could not be found."}}',
    );
  };

  const makeServer = (): Server => {
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, JSON.stringify({ error: { code: 500, message: String(err) } }));
        else res.destroy();
      });
    };
    const s = options.tls
      ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, onRequest)
      : createHttpServer(onRequest);
    s.keepAliveTimeout = 30_000;
    s.on(options.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      counts.connections++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    // TLS handshakes that fail (a client refusing the certificate) must not crash the fake.
    s.on('tlsClientError', () => {});
    s.on('clientError', (_err, socket) => socket.destroy());
    return s;
  };

  const fake: FakeOpenStack = {
    async listen(port?: number): Promise<string> {
      if (server) throw new Error('fake OpenStack is already listening');
      const s = makeServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port ?? boundPort, host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      boundPort = (s.address() as AddressInfo).port;
      server = s;
      return baseUrl();
    },
    async close(): Promise<void> {
      const s = server;
      server = undefined;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      if (!s) return;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      s.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await closed;
    },
    get url() {
      return baseUrl();
    },
    get authUrl() {
      return `${baseUrl()}/v3`;
    },
    get port() {
      return boundPort;
    },
    endpointUrl(region: string, iface: EndpointInterface): string {
      return `${baseUrl()}/networking/${encodeURIComponent(region)}/${iface}`;
    },
    counts,
    resetCounts(): void {
      Object.assign(counts, emptyCounts());
    },
    portQueries,
    issuedTokens(): string[] {
      return [...keystone.tokens.keys()];
    },
    expireAllTokens(): void {
      keystone.expireAll(Date.now());
    },
    setNetworkInCatalog(present: boolean): void {
      keystone.networkInCatalog = present;
    },
    setFailure(f: FakeFailure | null, service: FakeService = 'neutron'): void {
      if (service !== 'neutron') failure.keystone = f;
      if (service !== 'keystone') failure.neutron = f;
    },
    setLatency(ms: number, service: FakeService = 'neutron'): void {
      if (service !== 'neutron') latency.keystone = ms;
      if (service !== 'keystone') latency.neutron = ms;
    },
    setPorts(next: readonly FakePort[]): void {
      ports = normalisePorts(next);
    },
    get ports() {
      return ports;
    },
    addPort(port: FakePort): void {
      ports = [...ports, ...normalisePorts([port])];
    },
    removePort(id: string): void {
      ports = ports.filter((p) => p.id !== id);
    },
    movePort(id: string, deviceId: string, projectId?: string): void {
      let found = false;
      ports = ports.map((p) => {
        if (p.id !== id) return p;
        found = true;
        const project = projectId ?? ownerOf(p);
        return { ...p, device_id: deviceId, project_id: project, tenant_id: project };
      });
      if (!found) throw new Error(`movePort: no port ${id}`);
    },
  };
  return fake;
}

function emptyCounts(): FakeCounts {
  return {
    tokenRequests: 0,
    tokens: 0,
    catalogRequests: 0,
    ports: 0,
    portsUnauthorized: 0,
    portLookups: 0,
    routerLookups: 0,
    byEndpoint: {},
    connections: 0,
  };
}

function normalisePorts(list: readonly FakePort[]): FakePort[] {
  return list.map((p) => ({ ...p, id: p.id ?? randomUUID() }));
}

function ownerOf(p: FakePort): string | undefined {
  return p.project_id ?? p.tenant_id;
}

/** Neutron's default policies let admin (and the service/advsvc roles) read every project's ports. */
function seesAllProjects(token: IssuedToken): boolean {
  return token.roles.some((r) => r === 'admin' || r === 'service' || r === 'advsvc');
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1 << 20) {
        req.destroy();
        reject(new Error('body too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
