/*
 * The agent's request path, top to bottom:
 *   read identity (network/router, last X-Forwarded-For) -> read body -> resolve the port -> sign ->
 *   forward to Nova -> (Nova 404 on a cached answer: one uncached re-lookup) -> relay Nova's answer.
 * Every outcome is one log line with the request id; failures carry a stable code.
 *
 * Work for a proxy that has gone is not started: when the proxy closes the connection (its instance left,
 * e.g. cloud-init past its timeout under a boot storm), a request not yet looked up gets no port lookup,
 * one not yet sent gets no Nova request (MDA_ERR_CLIENT_GONE, counted). Under load the request and the
 * close wait in the socket buffer together and the request is parsed first, so while the agent is behind
 * (its event loop runs late: lag-gate.ts) the lookup waits for the next poll phase of the event loop (two
 * setImmediate hops; it reads the close) before it looks; an agent that keeps up looks at once. A
 * lookup already under way is not cut: it finishes and fills the cache (and other requests for the same
 * port share it). Nova requests are never sent twice: a request dropped here was never sent.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  addDetails,
  type ErrorCode,
  errorBody,
  HEADER_FORWARDED_FOR,
  HEADER_INSTANCE_ID,
  HEADER_REQUEST_ID,
  HEADER_SIGNATURE,
  HEADER_TENANT_ID,
  HOP_BY_HOP_HEADERS,
  type InstanceIdentity,
  type InstanceResolver,
  type LagGate,
  LogEvent,
  type LogEventCode,
  type Logger,
  MetadataError,
  processLag,
  TEXT_PLAIN,
  writeInfoLine,
} from '@nmp/common';
import type { Dispatcher } from 'undici';
import type { AgentMetrics } from './metrics.js';
import { type NovaClient, novaError } from './nova-client.js';
import type { Readiness } from './readiness.js';
import { readRequestIdentity } from './request-identity.js';
import type { InstanceSigner } from './signer.js';
import type { UpstreamObserver } from './upstream-observer.js';

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
  /** Whether the process is behind, so a request waits a poll phase for a close (default: the process's). */
  readonly lag?: LagGate;
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
  code?: ErrorCode | LogEventCode;
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
  readonly #lag: LagGate;
  /** Requests being served (for graceful shutdown and metrics). */
  inFlight = 0;
  /** Set while the agent stops: every answer closes its connection (the proxy opens a fresh one). */
  draining = false;

  constructor(options: AgentHandlerOptions) {
    this.#o = options;
    this.#metrics = options.metrics;
    this.#readiness = options.readiness;
    this.#lag = options.lag ?? processLag;
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
    if (this.draining) res.shouldKeepAlive = false;
    // One settled-handler pair rather than .catch().finally(): two promises fewer per request.
    const done = (): void => {
      this.inFlight--;
      this.#log(trace, start);
    };
    this.#serve(req, res, trace).then(done, (err: unknown) => {
      try {
        this.#fail(res, trace, err);
      } finally {
        done();
      }
    });
  };

  async #serve(req: IncomingMessage, res: ServerResponse, trace: Trace): Promise<void> {
    const { query, source } = readRequestIdentity(req.headers);
    trace.src = source.raw;
    if (query.mode === 'network') trace.network = query.id;
    else trace.router = query.id;

    // Nearly every request has no body: no extra promise for those.
    const body = hasBody(req) ? await readBody(req, this.#o.maxBodySize) : null;
    if (this.#lag.behind()) await nextTurn();
    if (proxyGone(req, res)) return this.#clientGone(trace, 'lookup');
    let identity = await this.#o.resolver.resolve(query);
    if (!identity.cached) this.#readiness?.markResolver();
    if (proxyGone(req, res)) return this.#clientGone(trace, 'nova');
    // A cached port may be stale (the address was reused): Nova's 404 earns exactly one fresh lookup,
    // so that answer is held back instead of streamed.
    let answer = await this.#forward(req, res, trace, identity, source.raw, body, identity.cached);
    if (answer.held !== undefined) {
      if (proxyGone(req, res)) return this.#clientGone(trace, 'lookup');
      trace.relookup = true;
      const fresh = await this.#o.resolver.resolve(query, { noCache: true });
      if (fresh.instanceId !== identity.instanceId || fresh.projectId !== identity.projectId) {
        identity = fresh;
        answer = await this.#forward(req, res, trace, identity, source.raw, body, false);
      } else {
        answer.release();
      }
    }
    trace.instance = identity.instanceId;
    trace.status = answer.status;
    if (identity.staleAgeMs !== undefined) {
      // Answered from the last verified lookup during an outage ([cache] serve_stale_on_outage): said so.
      trace.code = LogEvent.MDA_STALE_ANSWER;
      trace.level = 'warn';
      trace.detail = { staleAgeS: Math.round(identity.staleAgeMs / 1000), port: identity.portId };
    }
    if (answer.status === 403) {
      // The instance gets Nova's own 403; the operator gets the likely cause, never the secret.
      trace.code = 'MDA_ERR_NOVA_FORBIDDEN';
      trace.level = 'warn';
      trace.detail = {
        hint: 'The remote metadata server responded with Forbidden. This response usually occurs when shared secrets do not match.',
      };
    }
  }

  /** The proxy closed the connection before `stage` (the port lookup or the Nova request): not started. */
  #clientGone(trace: Trace, stage: 'lookup' | 'nova'): void {
    trace.code = 'MDA_ERR_CLIENT_GONE';
    trace.level = 'info';
    trace.detail = { skipped: stage };
    this.#metrics?.clientGone(stage);
  }

  /** Send the request to Nova and stream the answer into `res` (or hold a 404 back); resolves at its end. */
  #forward(
    req: IncomingMessage,
    res: ServerResponse,
    trace: Trace,
    identity: InstanceIdentity,
    forwardedFor: string,
    body: Buffer | null,
    holdNotFound: boolean,
  ): Promise<NovaExchange> {
    const headers = [
      HEADER_FORWARDED_FOR,
      forwardedFor,
      HEADER_INSTANCE_ID,
      identity.instanceId,
      HEADER_TENANT_ID,
      identity.projectId,
      HEADER_SIGNATURE,
      this.#o.signer.sign(identity.instanceId),
      HEADER_REQUEST_ID,
      trace.rid,
      'accept',
      '*/*',
    ];
    if (body !== null) headers.push('content-length', String(body.length));
    return new Promise((resolve, reject) => {
      const exchange = new NovaExchange(res, holdNotFound, this.#o.nova.observer, resolve, reject);
      this.#o.nova.dispatch({ method: trace.method, path: req.url ?? '/', headers, body }, exchange);
    });
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
    if (trace.level === undefined && trace.code === undefined && trace.err === undefined) {
      // The common line, serialised here (same fields and order as below; nothing in it to redact).
      writeInfoLine(this.#o.logger, requestFields(trace, ms), MSG_REQUEST);
      return;
    }
    const { level = 'info', detail, ...fields } = trace;
    // The line's status is what the instance got (a 503), never an upstream's (Keystone's 401).
    const line: Record<string, unknown> = detail ? addDetails(fields, detail) : fields;
    line.ms = ms;
    this.#o.logger[level](line, 'request');
  }
}

const MSG_REQUEST = JSON.stringify('request');

/** A successful request's fields as JSON, in Trace's order (what pino prints for `{...trace, ms}`). */
function requestFields(t: Trace, ms: number): string {
  let s = `"rid":${JSON.stringify(t.rid)},"method":${JSON.stringify(t.method)},"path":${JSON.stringify(t.path)}`;
  if (t.src !== undefined) s += `,"src":${JSON.stringify(t.src)}`;
  if (t.network !== undefined) s += `,"network":${JSON.stringify(t.network)}`;
  if (t.router !== undefined) s += `,"router":${JSON.stringify(t.router)}`;
  if (t.relookup !== undefined) s += `,"relookup":${t.relookup}`;
  if (t.instance !== undefined) s += `,"instance":${JSON.stringify(t.instance)}`;
  if (t.status !== undefined) s += `,"status":${t.status}`;
  return `${s},"ms":${ms}`;
}

/** What a failure says about the upstreams, for readiness (a lookup that found nothing is an answer). */
function noteUpstream(readiness: Readiness, failure: MetadataError): void {
  switch (failure.code) {
    case 'MDA_ERR_PORT_NOT_FOUND':
    case 'MDA_ERR_PORT_AMBIGUOUS':
      if ((failure.details as { cached?: unknown }).cached !== true) readiness.markResolver();
      return;
    case 'MDA_ERR_RESOLVER_UNAVAILABLE':
    case 'MDA_ERR_RPC_TIMEOUT':
    case 'MDA_ERR_RPC_UNAVAILABLE':
    case 'MDA_ERR_RPC_REMOTE_ERROR':
      readiness.resolverFailed(failure);
      return;
    case 'MDA_ERR_NOVA_UNREACHABLE':
    case 'MDA_ERR_NOVA_TIMEOUT':
    case 'MDA_ERR_NOVA_BAD_RESPONSE':
      readiness.novaFailed(failure);
      return;
  }
}

/** Whether the proxy has closed the connection this request came on (nobody is left to answer). */
function proxyGone(req: IncomingMessage, res: ServerResponse): boolean {
  return res.destroyed || req.socket.destroyed;
}

/**
 * Resolves after the next poll phase of the event loop, when the I/O already waiting has been read: two
 * setImmediate hops, as a read that did not fill node's buffer ends libuv's read loop, so a close
 * waiting behind the request is only read in the next poll phase.
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(setImmediate, resolve));
}

/** Whether the request declares a body (Content-Length, even 0, or Transfer-Encoding). */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
}

/** Read the body of a request that declares one (bodies are small: passwords). */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const declared = req.headers['content-length'];
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

const CLIENT_GONE = new Error('the proxy closed the connection');

/**
 * One request to Nova as an undici dispatch handler: Nova's status, headers and body go into the
 * proxy's response as they arrive (byte-exact; HEAD keeps Nova's Content-Length and has no body), with
 * backpressure. A 404 to be re-checked is held back instead (`held`), small as Nova's 404 pages are.
 */
class NovaExchange implements Dispatcher.DispatchHandler {
  status = 0;
  held: { headers: OutgoingHttpHeaders; chunks: Buffer[] } | undefined = undefined;
  #controller: Dispatcher.DispatchController | undefined = undefined;
  readonly #started = performance.now();

  constructor(
    readonly res: ServerResponse,
    readonly holdNotFound: boolean,
    readonly observer: UpstreamObserver | undefined,
    readonly resolve: (exchange: NovaExchange) => void,
    readonly reject: (err: unknown) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.res.destroyed) controller.abort(CLIENT_GONE);
    else this.res.once('close', this.#clientClosed);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return;
    this.status = statusCode;
    this.observer?.upstreamAnswered('nova', (performance.now() - this.#started) / 1000, statusCode);
    const out: OutgoingHttpHeaders = {};
    for (const name in headers) {
      if (!HOP_BY_HOP_HEADERS.has(name)) out[name] = headers[name];
    }
    if (statusCode === 404 && this.holdNotFound) this.held = { headers: out, chunks: [] };
    else this.res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.held !== undefined) this.held.chunks.push(chunk);
    else if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.#done();
    if (this.held === undefined) this.res.end();
    this.resolve(this);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#done();
    if (err === CLIENT_GONE || this.res.destroyed) {
      // The proxy went away; nothing to tell anyone.
      this.resolve(this);
      return;
    }
    if (this.status === 0) this.observer?.upstreamFailed('nova', (performance.now() - this.#started) / 1000);
    this.reject(novaError(err));
  }

  /** Send the held-back 404 after all (the fresh lookup found the same instance). */
  release(): void {
    const held = this.held!;
    this.held = undefined;
    this.res.writeHead(404, held.headers);
    this.res.end(held.chunks.length === 1 ? held.chunks[0] : Buffer.concat(held.chunks));
  }

  #done(): void {
    this.#controller = undefined;
    this.res.off('close', this.#clientClosed);
  }

  readonly #clientClosed = (): void => {
    this.#controller?.abort(CLIENT_GONE);
  };
}
