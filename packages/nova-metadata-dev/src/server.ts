/*
 * A Nova-compatible metadata API for development, tests and benchmarks. The request path is a few named
 * steps: count and report the request -> normalise the path -> `/` needs no identity -> identify the
 * instance (Nova's header checks, or the peer address) -> look the document up -> send. Documents are
 * rendered once per instance (documents.ts), so a request costs a path normalisation, one HMAC and a
 * map lookup; headers objects are prebuilt and logging is one debug line.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { canonicalIp, formatAddress, type Logger, silentLogger } from '@nmp/common';
import {
  type CompiledInstance,
  compileInstance,
  type Doc,
  makeDoc,
  TEXT_HTML_UTF8,
  TEXT_PLAIN_UTF8,
  versionListDoc,
} from './documents.js';
import { type ErrorVariant, negotiateErrorVariant, renderErrorPage } from './error-pages.js';
import { buildTable, type Identified, type InstanceTable, identify } from './identity.js';
import type { InstanceSpec } from './instances.js';
import { type PasswordOutcome, precheckPasswordWrite, readPasswordBody } from './password.js';
import { documentKey, normalisedPath } from './paths.js';
import { EC2_VERSIONS, visibleOpenStackVersions } from './versions.js';

/** What the test hook sees: the request exactly as it reached "Nova". */
export interface RequestInfo {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string | undefined;
}

export interface NovaMetadataServerOptions {
  readonly instances: readonly InstanceSpec[];
  /** Nova's `[neutron] metadata_proxy_shared_secret`. Default ''. */
  readonly sharedSecret?: string;
  /**
   * Nova's `[neutron] service_metadata_proxy`. true (default): identify by the Neutron agent's headers.
   * false: identify by the socket peer address among the instances' fixed_ips; headers are ignored.
   */
  readonly serviceMetadataProxy?: boolean;
  /** Nova's `[api] dhcp_domain`, appended to hostnames without a dot. Default 'novalocal'; '' for none. */
  readonly dhcpDomain?: string;
  /** PEM certificate chain and key: serve HTTPS. */
  readonly tlsCert?: string | Buffer;
  readonly tlsKey?: string | Buffer;
  /** PEM CA bundle: require a client certificate signed by it (HTTPS only). */
  readonly tlsClientCa?: string | Buffer;
  readonly logger?: Logger;
  /** Called for every request before it is handled; must not throw (errors are logged and ignored). */
  readonly onRequest?: (info: RequestInfo) => void;
  /** Clock for hiding future versions from the /openstack listing (tests). */
  readonly now?: () => Date;
  /** Idle keep-alive timeout of client connections. Default 5000 ms (Node's default). */
  readonly keepAliveTimeoutMs?: number;
}

export interface NovaMetadataStats {
  /** Requests received (before any check). */
  requests: number;
  /** Responses sent, by status code. */
  readonly statuses: Record<number, number>;
}

export interface NovaMetadataServer {
  readonly server: http.Server | https.Server;
  readonly stats: NovaMetadataStats;
  /** `http(s)://host:port` once listening; IPv6 hosts bracketed. */
  readonly url: string | undefined;
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /** Stop listening and drop open (keep-alive) connections. */
  close(): Promise<void>;
  /** Replace the instances (passwords start again from the specs). */
  setInstances(instances: readonly InstanceSpec[]): void;
  /** The password currently stored for an instance. */
  password(uuid: string): string | undefined;
}

const ROOT_DOC = versionListDoc([...EC2_VERSIONS, 'latest']);
const EMPTY_HTML_OK = makeDoc(200, TEXT_HTML_UTF8, '');

interface PasswordState {
  value: string | undefined;
  doc: Doc | undefined;
}

class NovaMetadataService {
  readonly stats: NovaMetadataStats = { requests: 0, statuses: {} };
  private readonly log: Logger;
  private readonly onRequest: ((info: RequestInfo) => void) | undefined;
  private readonly now: () => Date;
  private readonly identity: {
    table: InstanceTable;
    readonly secret: string;
    readonly serviceMetadataProxy: boolean;
    readonly log: Logger;
  };
  private passwords = new Map<string, PasswordState>();
  private readonly errorDocs = new Map<string, Doc>();
  private readonly variants = new Map<string | undefined, ErrorVariant>();
  private openstackList: { day: string; doc: Doc } | undefined;
  private readonly dhcpDomain: string | undefined;

  constructor(options: NovaMetadataServerOptions) {
    this.log = options.logger ?? silentLogger();
    this.onRequest = options.onRequest;
    this.now = options.now ?? (() => new Date());
    this.dhcpDomain = options.dhcpDomain;
    this.identity = {
      table: buildTable([]),
      secret: options.sharedSecret ?? '',
      serviceMetadataProxy: options.serviceMetadataProxy ?? true,
      log: this.log,
    };
    this.setInstances(options.instances);
    this.handle = this.handle.bind(this);
  }

  setInstances(specs: readonly InstanceSpec[]): void {
    const compiled = specs.map((spec, i) =>
      compileInstance(spec, { ordinal: i + 1, dhcpDomain: this.dhcpDomain, canonicalIp }),
    );
    this.identity.table = buildTable(compiled);
    this.passwords = new Map(compiled.map((c) => [c.uuid, { value: c.spec.password, doc: undefined }]));
  }

  password(uuid: string): string | undefined {
    return this.passwords.get(uuid)?.value || undefined;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.stats.requests++;
    if (this.onRequest) this.report(req);
    const doc = this.answer(req, res);
    if (doc !== undefined) this.send(req, res, doc);
  }

  /** The document that answers the request, or undefined when the answer comes later (password POST). */
  private answer(req: IncomingMessage, res: ServerResponse): Doc | undefined {
    const path = normalisedPath(req.url ?? '/');
    if (path === '/') return ROOT_DOC;

    const who = identify(this.identity, req.headers, req.socket.remoteAddress);
    if (!('instance' in who)) return this.errorDoc(req, who.status, who.explanation);

    const key = documentKey(path);
    if (key === 'ec2') return ROOT_DOC;
    if (key === 'openstack') return this.openstackVersions();
    const route = who.instance.routes.get(key);
    if (route === undefined) return this.errorDoc(req, 404, undefined);
    if (route === 'password') return this.passwordDoc(req, res, who.instance);
    if (route === 'local-ipv4') return makeDoc(200, TEXT_PLAIN_UTF8, localIpv4(who));
    return route;
  }

  private report(req: IncomingMessage): void {
    try {
      this.onRequest!({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        remoteAddress: req.socket.remoteAddress,
      });
    } catch (err) {
      this.log.error({ err }, 'onRequest hook threw');
    }
  }

  private openstackVersions(): Doc {
    const day = this.now().toISOString().slice(0, 10);
    if (this.openstackList?.day !== day) {
      this.openstackList = { day, doc: versionListDoc(visibleOpenStackVersions(day)) };
    }
    return this.openstackList.doc;
  }

  private passwordDoc(
    req: IncomingMessage,
    res: ServerResponse,
    instance: CompiledInstance,
  ): Doc | undefined {
    const state = this.passwords.get(instance.uuid)!;
    if (req.method === 'GET') {
      state.doc ??= makeDoc(200, TEXT_HTML_UTF8, state.value ?? '');
      return state.doc;
    }
    const early = precheckPasswordWrite(req, state.value);
    if (early) return this.passwordWritten(req, state, early);
    readPasswordBody(
      req,
      () => state.value,
      (outcome) => this.send(req, res, this.passwordWritten(req, state, outcome)),
    );
    return undefined;
  }

  private passwordWritten(req: IncomingMessage, state: PasswordState, outcome: PasswordOutcome): Doc {
    if (outcome.kind === 'refused') return this.errorDoc(req, outcome.status, outcome.explanation);
    // Nova stores '' as "no password", so an empty POST leaves the password unset.
    state.value = outcome.value === '' ? undefined : outcome.value;
    state.doc = undefined;
    return EMPTY_HTML_OK;
  }

  /** webob's error page for the status, in the variant the Accept header asks for (rendered once). */
  private errorDoc(req: IncomingMessage, status: number, explanation: string | undefined): Doc {
    const variant = this.variant(req.headers.accept);
    const key = `${variant}\0${status}\0${explanation ?? ''}`;
    let doc = this.errorDocs.get(key);
    if (!doc) {
      const page = renderErrorPage(status, explanation, variant);
      doc = makeDoc(status, page.contentType, page.body);
      this.errorDocs.set(key, doc);
    }
    return doc;
  }

  private variant(accept: string | undefined): ErrorVariant {
    let v = this.variants.get(accept);
    if (v === undefined) {
      v = negotiateErrorVariant(accept);
      if (this.variants.size < 256) this.variants.set(accept, v);
    }
    return v;
  }

  private send(req: IncomingMessage, res: ServerResponse, doc: Doc): void {
    res.writeHead(doc.status, doc.headers);
    if (req.method === 'HEAD') res.end();
    else res.end(doc.body);
    this.stats.statuses[doc.status] = (this.stats.statuses[doc.status] ?? 0) + 1;
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug(
        { method: req.method, url: req.url, status: doc.status, bytes: doc.body.length },
        'request',
      );
    }
  }
}

/** EC2 local-ipv4 without an IPv4 fixed IP: the request's address, as Nova prints it (`None` if absent). */
function localIpv4(who: Identified): string {
  return who.address ?? 'None';
}

function formatUrl(scheme: string, address: AddressInfo): string {
  return `${scheme}://${formatAddress(address)}`;
}

export function createNovaMetadataServer(options: NovaMetadataServerOptions): NovaMetadataServer {
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new TypeError('tlsCert and tlsKey must be given together');
  }
  if (options.tlsClientCa !== undefined && options.tlsCert === undefined) {
    throw new TypeError('tlsClientCa needs tlsCert and tlsKey (client certificates exist only with HTTPS)');
  }
  const service = new NovaMetadataService(options);
  const tls = options.tlsCert !== undefined;
  const server = tls
    ? https.createServer(
        {
          cert: options.tlsCert,
          key: options.tlsKey,
          ...(options.tlsClientCa !== undefined
            ? { ca: options.tlsClientCa, requestCert: true, rejectUnauthorized: true }
            : {}),
          noDelay: true,
        },
        service.handle,
      )
    : http.createServer({ noDelay: true }, service.handle);
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5000;
  let url: string | undefined;

  return {
    server,
    stats: service.stats,
    get url() {
      return url;
    },
    listen(port = 0, host = '127.0.0.1') {
      return new Promise<AddressInfo>((resolve, reject) => {
        const onError = (err: Error) => {
          server.off('listening', onListening);
          reject(err);
        };
        const onListening = () => {
          server.off('error', onError);
          const address = server.address() as AddressInfo;
          url = formatUrl(tls ? 'https' : 'http', address);
          resolve(address);
        };
        server.once('error', onError);
        server.once('listening', onListening);
        server.listen(port, host);
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    setInstances(instances) {
      service.setInstances(instances);
    },
    password(uuid) {
      return service.password(uuid);
    },
  };
}
