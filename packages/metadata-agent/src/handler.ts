/*
 * The agent's request path, top to bottom:
 *   read identity (network/router, last X-Forwarded-For) -> read body -> resolve the port -> sign ->
 *   forward to Nova -> (Nova 404 on a cached answer: one uncached re-lookup) -> relay Nova's answer.
 * Every outcome is one log line with the request id; failures carry a stable code.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import {
  errorBody,
  HEADER_REQUEST_ID,
  HOP_BY_HOP_HEADERS,
  type InstanceIdentity,
  type InstanceResolver,
  type Logger,
  MetadataError,
  TEXT_PLAIN,
} from '@nmp/common';
import type { AgentMetrics } from './metrics.js';
import type { NovaClient, NovaResponse } from './nova-client.js';
import type { Readiness } from './readiness.js';
import { readRequestIdentity } from './request-identity.js';
import type { InstanceSigner } from './signer.js';

export interface AgentHandlerOptions {
  readonly resolver: InstanceResolver;
  readonly nova: NovaClient;
  readonly signer: InstanceSigner;
  readonly logger: Logger;
  readonly maxBodySize: number;
  /** Counts every request (mode, status, duration). */
  readonly metrics?: AgentMetrics;
  /** Told when the resolver answered without the cache, or failed. */
  readonly readiness?: Readiness;
}

const REQUEST_ID_SHAPE = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const EMPTY = Buffer.alloc(0);

/** Per-request facts for the log line. */
interface Trace {
  rid: string;
  method: string;
  path: string;
  src?: string;
  network?: string;
  router?: string;
  instance?: string;
  status?: number;
  code?: string;
  relookup?: boolean;
  /** Set when the request failed: the log line goes out at this level with these details. */
  level?: 'info' | 'warn' | 'error';
  detail?: Readonly<Record<string, unknown>>;
  err?: unknown;
}

export class AgentHandler {
  readonly #o: AgentHandlerOptions;
  readonly #metrics: AgentMetrics | undefined;
  readonly #readiness: Readiness | undefined;
  /** Requests being served (for graceful shutdown and metrics). */
  inFlight = 0;

  constructor(options: AgentHandlerOptions) {
    this.#o = options;
    this.#metrics = options.metrics;
    this.#readiness = options.readiness;
  }

  /** Node 'request' listener. Never throws; every failure becomes an answer and a log line. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const start = process.hrtime.bigint();
    const given = req.headers[HEADER_REQUEST_ID];
    const trace: Trace = {
      rid: typeof given === 'string' && REQUEST_ID_SHAPE.test(given) ? given : `req-${randomUUID()}`,
      method: req.method ?? 'GET',
      path: (req.url ?? '/').slice(0, 1024),
    };
    this.inFlight++;
    this.#serve(req, res, trace)
      .catch((err: unknown) => this.#fail(res, trace, err))
      .finally(() => {
        this.inFlight--;
        this.#log(trace, start);
      });
  };

  async #serve(req: IncomingMessage, res: ServerResponse, trace: Trace): Promise<void> {
    const { query, source } = readRequestIdentity(req.headers);
    trace.src = source.raw;
    if (query.mode === 'network') trace.network = query.id;
    else trace.router = query.id;

    const body = await readBody(req, this.#o.maxBodySize);
    let identity = await this.#o.resolver.resolve(query);
    if (!identity.cached) this.#readiness?.markResolver();
    let answer = await this.#forward(req, trace, identity, source.raw, body);

    // A cached port may be stale (the address was reused): Nova's 404 earns exactly one fresh lookup.
    if (answer.statusCode === 404 && identity.cached) {
      trace.relookup = true;
      let fresh: InstanceIdentity;
      try {
        fresh = await this.#o.resolver.resolve(query, { noCache: true });
      } catch (err) {
        answer.body.dump().catch(() => {});
        throw err;
      }
      if (fresh.instanceId !== identity.instanceId || fresh.projectId !== identity.projectId) {
        await answer.body.dump().catch(() => {});
        identity = fresh;
        answer = await this.#forward(req, trace, identity, source.raw, body);
      }
    }
    trace.instance = identity.instanceId;
    if (answer.statusCode === 403) {
      // The instance gets Nova's own 403; the operator gets the likely cause, never the secret.
      trace.code = 'MDA_ERR_NOVA_FORBIDDEN';
      trace.level = 'warn';
      trace.detail = {
        hint: 'The remote metadata server responded with Forbidden. This response usually occurs when shared secrets do not match.',
      };
    }
    await relay(req, res, answer, trace);
  }

  #forward(
    req: IncomingMessage,
    trace: Trace,
    identity: InstanceIdentity,
    forwardedFor: string,
    body: Buffer | null,
  ): Promise<NovaResponse> {
    const headers: Record<string, string> = {
      'x-forwarded-for': forwardedFor,
      'x-instance-id': identity.instanceId,
      'x-tenant-id': identity.projectId,
      'x-instance-id-signature': this.#o.signer.sign(identity.instanceId),
      'x-openstack-request-id': trace.rid,
      accept: '*/*',
    };
    if (body !== null) headers['content-length'] = String(body.length);
    return this.#o.nova.request({ method: trace.method, path: req.url ?? '/', headers, body });
  }

  #fail(res: ServerResponse, trace: Trace, err: unknown): void {
    const failure =
      err instanceof MetadataError
        ? err
        : new MetadataError('MDA_ERR_INTERNAL', { error: String(err) }, { cause: err });
    trace.code = failure.code;
    trace.status = failure.status;
    trace.level = failure.level === 'error' || failure.level === 'warn' ? failure.level : 'info';
    trace.detail = failure.details;
    if (failure.code === 'MDA_ERR_INTERNAL') trace.err = err;
    if (this.#readiness !== undefined) noteUpstream(this.#readiness, failure);
    if (res.headersSent) {
      // Part of an answer is out: the only honest signal left is to cut the connection.
      res.destroy();
      return;
    }
    const text = errorBody(failure);
    res.writeHead(failure.status, { 'content-type': TEXT_PLAIN, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  /** The one line per request (what happened, how long it took, for failures the code and why), and its count. */
  #log(trace: Trace, start: bigint): void {
    const ns = Number(process.hrtime.bigint() - start);
    const ms = Math.round(ns / 1e3) / 1e3;
    this.#metrics?.request(
      trace.network !== undefined ? 'network' : trace.router !== undefined ? 'router' : 'none',
      trace.status ?? 0,
      ns / 1e9,
    );
    const { level = 'info', detail, ...fields } = trace;
    this.#o.logger[level](detail ? { ...fields, ...detail, ms } : { ...fields, ms }, 'request');
  }
}

/** What a failure says about the upstreams, for readiness (a lookup that found nothing is an answer). */
function noteUpstream(readiness: Readiness, failure: MetadataError): void {
  switch (failure.code) {
    case 'MDA_ERR_PORT_NOT_FOUND':
    case 'MDA_ERR_PORT_AMBIGUOUS':
      if ((failure.details as { cached?: unknown }).cached !== true) readiness.markResolver();
      return;
    case 'MDA_ERR_RESOLVER_UNAVAILABLE':
      readiness.resolverFailed(failure);
      return;
    case 'MDA_ERR_NOVA_UNREACHABLE':
    case 'MDA_ERR_NOVA_TIMEOUT':
    case 'MDA_ERR_NOVA_BAD_RESPONSE':
      readiness.novaFailed(failure);
      return;
  }
}

/** Read a request body (bodies are small: passwords); none for requests that declare none. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const declared = req.headers['content-length'];
  if (declared === undefined && req.headers['transfer-encoding'] === undefined) return null;
  if (declared !== undefined && Number(declared) > limit) {
    req.resume();
    throw new MetadataError('MDA_ERR_BODY_TOO_LARGE', { length: declared, limit });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new MetadataError('MDA_ERR_BODY_TOO_LARGE', { limit });
    chunks.push(chunk);
  }
  if (size === 0) return declared === undefined ? null : EMPTY;
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/** Relay Nova's status, headers and body byte-exact; HEAD keeps Nova's Content-Length and sends no body. */
async function relay(
  req: IncomingMessage,
  res: ServerResponse,
  answer: NovaResponse,
  trace: Trace,
): Promise<void> {
  const out: OutgoingHttpHeaders = {};
  for (const name in answer.headers) {
    if (!HOP_BY_HOP_HEADERS.has(name)) out[name] = answer.headers[name];
  }
  trace.status = answer.statusCode;
  res.writeHead(answer.statusCode, out);
  if (req.method === 'HEAD') {
    await answer.body.dump();
    res.end();
    return;
  }
  try {
    await pipeline(answer.body, res);
  } catch (err) {
    const e = err as { code?: string };
    if (e?.code === 'ERR_STREAM_PREMATURE_CLOSE' && res.destroyed && !res.writableFinished) {
      // The proxy went away mid-answer; nothing to tell anyone.
      trace.code = 'client_closed';
      return;
    }
    throw new MetadataError('MDA_ERR_NOVA_BAD_RESPONSE', { cause: e?.code ?? String(err) }, { cause: err });
  }
}
