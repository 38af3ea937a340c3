/*
 * The proxy's request path, top to bottom:
 *   accept -> police the request line -> rate limit -> read a body, if any -> (next poll phase of the event loop:
 *   is the instance still there?) -> stamp identity -> forward -> relay.
 * A request body (rare: the password POST) is read whole, within the limit, before the agent is
 * contacted, so a malformed, oversized or never-finished body never reaches the agent. The answer streams
 * from the agent's socket to the instance byte for byte. Our own failures get a plain-text answer with a
 * stable code in the log; a failure after the answer started closes the connection, the only honest
 * signal left.
 *
 * A request whose instance has already closed its connection is not forwarded (MDP_ERR_CLIENT_GONE,
 * counted): under a boot storm the request and the client's close (cloud-init past its timeout) wait in
 * the socket buffer together, and the request is parsed before the close is read. So while the process
 * is behind (its event loop runs late: lag-gate.ts), forwarding waits for the next poll phase of the
 * event loop (two setImmediate hops: it reads the close), then looks at the connection; a process that
 * keeps up forwards at once. An instance that leaves later, while the agent holds the request, gets the
 * agent request cut (the agent then drops it too, if it has not started on it).
 *
 * Hot path: no per-request closures. The response object is the exchange: it carries the log fields
 * and is itself what the agent client reports the agent's answer to (see ProxyResponse).
 */
import { randomBytes } from 'node:crypto';
import { type ClientRequest, type IncomingMessage, ServerResponse } from 'node:http';
import {
  addDetails,
  type ErrorCode,
  forwardedForFromPeer,
  type LagGate,
  LogEvent,
  type LogEventCode,
  type Logger,
  MetadataError,
  type ProxyIdentity,
  processLag,
  TEXT_PLAIN,
  writeInfoLine,
} from '@nmp/common';
import { type AgentClient, type AgentExchange, agentError } from './agent-client.js';
import { needsFreshConnection, retryOnFreshConnection } from './agent-retry.js';
import { agentRequestHeaders, instanceResponseHeaders } from './header-policy.js';
import type { ProxyMetrics } from './metrics.js';
import { bodyLength, bodyTooLarge, checkRequest } from './request-policy.js';
import type { SsrfAnswer, SsrfPolicy } from './ssrf/policy.js';

export interface ProxyHandlerOptions {
  readonly identity: ProxyIdentity;
  readonly agent: AgentClient;
  readonly logger: Logger;
  readonly maxBodySize: number;
  /** Milliseconds an answer may wait for the instance to read it before the connection is cut. */
  readonly clientTimeoutMs?: number;
  /** Optional admission check (rate limiting); returns an error to refuse the request. */
  readonly admit?: (source: string) => MetadataError | undefined;
  /** Opt-in SSRF defences; absent when all are off (then they cost nothing). */
  readonly ssrf?: SsrfPolicy;
  readonly metrics?: ProxyMetrics;
  /** Whether the process is behind, so a request waits a poll phase for a close (default: the process's). */
  readonly lag?: LagGate;
}

type Level = 'info' | 'warn' | 'error';

/**
 * The instance's response, which is also the exchange: the fields of its one log line, and what the
 * agent client reports the agent's answer to. Servers made by MetadataProxy create these.
 */
export class ProxyResponse extends ServerResponse<IncomingMessage> implements AgentExchange {
  handler: ProxyHandler | undefined = undefined;
  start = 0n;
  rid = '';
  method = '';
  path = '';
  src = '';
  status = 0;
  code: ErrorCode | LogEventCode | undefined = undefined;
  level: Level = 'info';
  detail: Readonly<Record<string, unknown>> | undefined = undefined;
  /** Set while the agent holds the request; destroyed when the instance goes away. */
  upstream: ClientRequest | undefined = undefined;
  /** The agent's answer while its body streams through. */
  answer: AgentAnswer | undefined = undefined;
  /** Running while the instance does not read the answer (backpressure). */
  stall: NodeJS.Timeout | undefined = undefined;
  /** The body sent to the agent (null for nearly all), kept for the one retry (agent-retry.ts). */
  body: Buffer | null = null;
  /** Sent a second time already. */
  retried = false;
  /** About to be forwarded, or waiting for the next turn of the event loop first (see forwardLater). */
  queued = false;

  onAgentResponse(answer: IncomingMessage): void {
    if (this.destroyed) {
      this.upstream?.destroy();
      this.upstream = undefined;
      return;
    }
    const a = answer as AgentAnswer;
    a.exchange = this;
    this.answer = a;
    this.status = answer.statusCode ?? 0;
    this.writeHead(this.status, instanceResponseHeaders(answer.headers));
    // `on`, not `once`, for the events a response emits at most once: once() wraps every listener in a
    // new closure per request.
    a.on('data', onAnswerData);
    a.on('end', onAnswerEnd);
    a.on('aborted', onAnswerBroken);
    a.on('error', onAnswerBroken);
  }

  onAgentError(err: Error, request: ClientRequest): void {
    // Already settled: the answer broke off (handled there) or the instance left (we cut it ourselves),
    // or an earlier try reports again after the retry replaced it.
    if (this.upstream === undefined || request !== this.upstream) return;
    this.upstream = undefined;
    this.answer = undefined;
    if (this.destroyed) {
      this.code ??= LogEvent.client_closed;
      return;
    }
    // The agent closed the connection before answering (a restart): once more, on a fresh one.
    if (!this.retried && retryOnFreshConnection(this.method, err)) {
      this.retried = true;
      this.detail = { agentRetry: (err as { code?: string }).code };
      this.handler?.forward(this.req, this, this.body, true);
      return;
    }
    this.handler?.fail(this, agentError(err));
  }
}

type AgentAnswer = IncomingMessage & { exchange: ProxyResponse };

function onAnswerData(this: AgentAnswer, chunk: Buffer): void {
  const res = this.exchange;
  if (!res.write(chunk) && !res.destroyed && res.stall === undefined) {
    // Stop reading from the agent until the instance reads; cut it if it never does.
    this.pause();
    res.once('drain', resumeUpstream);
    res.stall = setTimeout(clientStalled, res.handler!.clientTimeoutMs, res);
  }
}

function onAnswerEnd(this: AgentAnswer): void {
  const res = this.exchange;
  res.upstream = undefined;
  res.answer = undefined;
  res.end();
}

/** The agent's answer broke off mid-body: all that is left is to cut the instance's connection. */
function onAnswerBroken(this: AgentAnswer, err?: Error): void {
  const res = this.exchange;
  if (res.upstream === undefined) return;
  res.upstream = undefined;
  res.answer = undefined;
  if (res.destroyed) {
    res.code ??= LogEvent.client_closed;
    return;
  }
  res.handler?.fail(res, agentError(err ?? Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
}

/** Whether bytes of this request's body may still be on the connection. */
function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return length === undefined ? req.headers['transfer-encoding'] !== undefined : length !== '0';
}

const MSG_REQUEST = JSON.stringify('request');

/**
 * Request ids in the `req-<uuid>` shape OpenStack uses: a random per-process prefix and a counter, so
 * they stay unique across proxies and restarts without a random UUID per request.
 */
const RID_PREFIX = (() => {
  const h = randomBytes(10).toString('hex');
  return `req-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-`;
})();
let ridCounter = 0;
function nextRequestId(): string {
  ridCounter = (ridCounter + 1) % 0x1000000000000;
  return RID_PREFIX + ridCounter.toString(16).padStart(12, '0');
}

function resumeUpstream(this: ProxyResponse): void {
  clearTimeout(this.stall);
  this.stall = undefined;
  this.answer?.resume();
}

/** The instance has not read any of the answer for the client timeout: a slow-read attack or a dead peer. */
function clientStalled(res: ProxyResponse): void {
  res.stall = undefined;
  res.code = LogEvent.client_timeout;
  res.level = 'warn';
  res.detail = { reason: 'client-not-reading', timeoutMs: res.handler!.clientTimeoutMs };
  res.destroy();
}

function onResponseClose(this: ProxyResponse): void {
  const handler = this.handler!;
  handler.inFlight--;
  if (this.queued) {
    // Gone before it was forwarded: it never will be (forwardLater sees the connection closed).
    this.queued = false;
    handler.clientGone(this);
  }
  if (this.stall !== undefined) {
    clearTimeout(this.stall);
    this.stall = undefined;
  }
  if (this.upstream !== undefined) {
    // The instance left before the agent finished: free the agent connection now.
    this.code ??= LogEvent.client_closed;
    const upstream = this.upstream;
    this.upstream = undefined;
    this.answer = undefined;
    upstream.destroy();
  }
  handler.log(this);
}

/**
 * One more turn: a TCP read that did not fill node's buffer ends libuv's read loop, so a close waiting
 * behind the request is read in the NEXT poll phase, which runs before this second immediate.
 */
function nextPoll(res: ProxyResponse): void {
  setImmediate(forwardIfPresent, res);
}

/** Forward, unless the instance's connection closed meanwhile (forwardLater, now or after its turns). */
function forwardIfPresent(res: ProxyResponse): void {
  if (!res.queued) return; // closed already (onResponseClose counted it)
  res.queued = false;
  const handler = res.handler!;
  if (res.destroyed || res.req.socket.destroyed) {
    handler.clientGone(res);
    res.destroy();
    return;
  }
  handler.forward(res.req, res, res.body);
}

/** Error answers by code, built once (no proxy message depends on details). */
const ANSWERS = new Map<string, { body: Buffer; keep: Record<string, string | number> }>();
function answerFor(failure: MetadataError): { body: Buffer; keep: Record<string, string | number> } {
  let a = ANSWERS.get(failure.code);
  if (a === undefined) {
    const body = Buffer.from(`${failure.message}\n`);
    a = {
      body,
      keep: { 'content-type': TEXT_PLAIN, 'content-length': body.length, 'cache-control': 'no-cache' },
    };
    ANSWERS.set(failure.code, a);
  }
  return a;
}

export class ProxyHandler {
  readonly #o: ProxyHandlerOptions;
  readonly #agent: AgentClient;
  readonly #admit: ((source: string) => MetadataError | undefined) | undefined;
  readonly #maxBodySize: number;
  readonly #ssrf: SsrfPolicy | undefined;
  readonly #metrics: ProxyMetrics | undefined;
  readonly #lag: LagGate;
  /** Carries the network or router id on every line, serialised once. */
  readonly #logger: Logger;
  readonly clientTimeoutMs: number;
  inFlight = 0;
  /** Set while the proxy stops: every answer closes its connection. */
  draining = false;

  constructor(options: ProxyHandlerOptions) {
    this.#o = options;
    this.#agent = options.agent;
    this.#admit = options.admit;
    this.#maxBodySize = options.maxBodySize;
    this.#ssrf = options.ssrf;
    this.#metrics = options.metrics;
    this.#lag = options.lag ?? processLag;
    this.clientTimeoutMs = options.clientTimeoutMs ?? 32_000;
    this.#logger = options.logger.child({ [options.identity.mode]: options.identity.id });
  }

  readonly handle = (req: IncomingMessage, res: ProxyResponse): void => {
    res.handler = this;
    res.start = process.hrtime.bigint();
    res.rid = nextRequestId();
    res.method = req.method ?? 'GET';
    res.path = (req.url ?? '').slice(0, 1024);
    res.src = forwardedForFromPeer(req.socket.remoteAddress) ?? '';
    this.inFlight++;
    if (this.draining) res.shouldKeepAlive = false;
    res.on('close', onResponseClose);

    let refusal = checkRequest(req);
    // The SSRF policy runs before the rate limiter: tokens and its own refusals do not use up a
    // guest's rate budget.
    if (refusal === undefined && this.#ssrf !== undefined) {
      const decision = this.#ssrf.decide(res.method, req.url!, req.rawHeaders, res.src, this.#o.identity);
      if (decision.kind === 'answer') {
        this.#answer(req, res, decision);
        return;
      }
      if (decision.kind === 'refuse') refusal = new MetadataError(decision.code, decision.details);
    }
    refusal ??= this.#admit?.(res.src);
    const length = refusal === undefined ? bodyLength(req, this.#maxBodySize) : refusal;
    if (length === 0) this.forwardLater(res, null);
    else if (typeof length === 'number') this.#readBody(req, res);
    else this.fail(res, length);
  };

  /** An answer the proxy gives itself (the session-token PUT); the agent is not involved. */
  #answer(req: IncomingMessage, res: ProxyResponse, answer: SsrfAnswer): void {
    res.status = answer.status;
    res.writeHead(
      answer.status,
      hasUnreadBody(req) ? { ...answer.headers, connection: 'close' } : answer.headers,
    );
    res.end(answer.body);
  }

  /** The rare request with a body: read it whole within the limit, then forward. */
  #readBody(req: IncomingMessage, res: ProxyResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.#maxBodySize) {
        req.off('data', onData);
        req.off('end', onEnd);
        this.fail(res, bodyTooLarge(this.#maxBodySize));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      if (!res.destroyed && !res.headersSent) this.forwardLater(res, Buffer.concat(chunks, size));
    };
    req.on('data', onData);
    req.once('end', onEnd);
  }

  /**
   * Forward, unless the instance has closed its connection: such a request is dropped, never sent to the
   * agent. While the process is behind, on the next turn of the event loop (its close may be waiting
   * behind the request); while it keeps up, at once.
   */
  forwardLater(res: ProxyResponse, body: Buffer | null): void {
    res.queued = true;
    res.body = body;
    if (this.#lag.behind()) setImmediate(nextPoll, res);
    else forwardIfPresent(res);
  }

  /** The instance left before its request was forwarded: not sent, logged and counted as such. */
  clientGone(res: ProxyResponse): void {
    res.code = 'MDP_ERR_CLIENT_GONE';
    res.level = 'info';
    this.#metrics?.clientGone();
  }

  /** Stamp identity and send to the agent; `fresh` for the one retry (agent-retry.ts). */
  forward(req: IncomingMessage, res: ProxyResponse, body: Buffer | null, fresh = false): void {
    const headers = agentRequestHeaders(req.rawHeaders, this.#o.identity, res.src, res.rid, body);
    res.body = body;
    try {
      res.upstream = this.#agent.send(
        res.method,
        req.url!,
        headers,
        body,
        res,
        fresh || needsFreshConnection(res.method),
      );
    } catch (err) {
      // node refuses, before sending, what HTTP/1.1 cannot carry (e.g. a control character in the path).
      res.upstream = undefined;
      this.fail(res, agentError(err));
    }
  }

  /**
   * Answer with our own error (or, when the answer has started, cut the connection). Also used by the
   * server when the parser rejects the rest of a request whose response object already exists.
   */
  fail(res: ProxyResponse, err: unknown): void {
    const failure =
      err instanceof MetadataError
        ? err
        : new MetadataError('MDP_ERR_INTERNAL', { error: String(err) }, { cause: err });
    res.code = failure.code;
    res.level = failure.level === 'error' || failure.level === 'warn' ? failure.level : 'info';
    res.detail = failure.details;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    res.status = failure.status;
    const answer = answerFor(failure);
    // An unread request body would poison the next request on this connection; after an upstream
    // failure mid-exchange a fresh connection is the safe state. Node closes it after `connection: close`.
    const close = hasUnreadBody(res.req) || failure.status === 502 || failure.status === 408;
    res.writeHead(failure.status, close ? { ...answer.keep, connection: 'close' } : answer.keep);
    res.end(answer.body);
  }

  /** The one line per request (the network or router id is bound on the logger already). */
  log(res: ProxyResponse): void {
    const ms = Math.round(Number(process.hrtime.bigint() - res.start) / 1e3) / 1e3;
    if (res.level === 'info' && res.code === undefined && res.detail === undefined && res.writableFinished) {
      // The common line, serialised here (same fields and order as below; nothing in it to redact). The
      // request id (ours, hex), the method (one of node's http.METHODS: llhttp takes no other) and the
      // source (the kernel's peer address in node's text form, zone removed: forwardedForFromPeer) need
      // no escaping; the path, the instance's own bytes, goes through JSON.stringify.
      writeInfoLine(
        this.#logger,
        `"rid":"${res.rid}","method":"${res.method}","path":${JSON.stringify(res.path)},"src":"${res.src}","status":${res.status},"ms":${ms}`,
        MSG_REQUEST,
      );
      this.#metrics?.request(res.status, ms / 1000);
      return;
    }
    const line: Record<string, unknown> = {
      rid: res.rid,
      method: res.method,
      path: res.path,
      src: res.src,
      status: res.status,
    };
    if (res.code !== undefined) line.code = res.code;
    if (res.detail !== undefined) addDetails(line, res.detail);
    line.ms = ms;
    if (!res.writableFinished) line.aborted = true;
    this.#logger[res.level](line, 'request');
    if (this.#metrics !== undefined) {
      this.#metrics.request(res.status, ms / 1000);
      if (res.code !== undefined) this.#metrics.refusedFor(res.code);
    }
  }
}
