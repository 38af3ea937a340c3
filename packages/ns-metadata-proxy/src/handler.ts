/*
 * The proxy's request path, top to bottom:
 *   accept -> police the request line -> (rate limit) -> stamp identity -> forward -> relay.
 * The answer streams from the agent's socket to the instance byte for byte. Our own failures get a
 * plain-text answer with a stable code in the log; a failure after the answer started closes the
 * connection, the only honest signal left.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { errorBody, forwardedForFromPeer, type Logger, MetadataError, TEXT_PLAIN } from '@nmp/common';
import type { Dispatcher, Pool } from 'undici';
import { agentError } from './agent-client.js';
import { agentRequestHeaders, instanceResponseHeaders, type ProxyIdentity } from './header-policy.js';
import { BodyLimit, checkRequestTarget } from './request-policy.js';

export interface ProxyHandlerOptions {
  readonly identity: ProxyIdentity;
  readonly agent: Pool;
  readonly logger: Logger;
  readonly maxBodySize: number;
  /** Optional admission check (rate limiting); returns an error to refuse the request. */
  readonly admit?: (source: string) => MetadataError | undefined;
}

interface Trace {
  readonly rid: string;
  readonly method: string;
  readonly path: string;
  readonly src: string;
  status: number;
  code?: string;
  /** Set when the request failed: the log line goes out at this level with these details. */
  level?: 'info' | 'warn' | 'error';
  detail?: Readonly<Record<string, unknown>>;
}

export class ProxyHandler {
  readonly #o: ProxyHandlerOptions;
  /** Carries the network or router id on every line, serialised once. */
  readonly #logger: Logger;
  inFlight = 0;

  constructor(options: ProxyHandlerOptions) {
    this.#o = options;
    this.#logger = options.logger.child({ [options.identity.mode]: options.identity.id });
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const start = process.hrtime.bigint();
    const src = forwardedForFromPeer(req.socket.remoteAddress) ?? '';
    const trace: Trace = {
      rid: `req-${randomUUID()}`,
      method: req.method ?? 'GET',
      path: (req.url ?? '').slice(0, 1024),
      src,
      status: 0,
    };
    this.inFlight++;
    res.once('close', () => {
      this.inFlight--;
      this.#log(trace, start, res);
    });
    try {
      checkRequestTarget(req);
      const refusal = this.#o.admit?.(src);
      if (refusal) throw refusal;
      this.#forward(req, res, trace);
    } catch (err) {
      this.#fail(req, res, trace, err);
    }
  };

  #forward(req: IncomingMessage, res: ServerResponse, trace: Trace): void {
    const headers = agentRequestHeaders(req.rawHeaders, this.#o.identity, trace.src, trace.rid);
    const limit = BodyLimit.forRequest(req, this.#o.maxBodySize);
    const options: Dispatcher.RequestOptions = {
      method: trace.method as Dispatcher.HttpMethod,
      path: req.url!,
      headers,
      body: limit === null ? null : Readable.from(limit.body(req), { objectMode: false }),
    };
    this.#o.agent.stream(
      options,
      ({ statusCode, headers: answerHeaders }) => {
        trace.status = statusCode;
        res.writeHead(statusCode, instanceResponseHeaders(answerHeaders));
        return res;
      },
      (err) => {
        if (err) this.#fail(req, res, trace, limit?.exceeded ? limit.error() : err);
      },
    );
  }

  #fail(req: IncomingMessage, res: ServerResponse, trace: Trace, err: unknown): void {
    let failure: MetadataError;
    if (err instanceof MetadataError) failure = err;
    else if ((err as { code?: string })?.code === 'UND_ERR_ABORTED' || res.destroyed) {
      // The instance went away; nothing to answer.
      trace.code = 'client_closed';
      return;
    } else if (typeof (err as { code?: string })?.code === 'string') failure = agentError(err);
    else failure = new MetadataError('MDP_ERR_INTERNAL', { error: String(err) }, { cause: err });
    trace.code = failure.code;
    trace.level = failure.level === 'error' || failure.level === 'warn' ? failure.level : 'info';
    trace.detail = failure.details;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    trace.status = failure.status;
    const text = errorBody(failure);
    const headers: Record<string, string | number> = {
      'content-type': TEXT_PLAIN,
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-cache',
    };
    // An unread request body would poison the next request on this connection.
    if (!req.complete) headers.connection = 'close';
    res.writeHead(failure.status, headers);
    res.end(text);
    if (!req.complete) res.once('finish', () => req.socket.destroySoon());
  }

  /** The one line per request (the network or router id is bound on the logger already). */
  #log(trace: Trace, start: bigint, res: ServerResponse): void {
    const ms = Math.round(Number(process.hrtime.bigint() - start) / 1e3) / 1e3;
    const { level = 'info', detail, ...fields } = trace;
    const line: Record<string, unknown> = detail ? { ...fields, ...detail, ms } : { ...fields, ms };
    if (!res.writableFinished) line.aborted = true;
    this.#logger[level](line, 'request');
  }
}
