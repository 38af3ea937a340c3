/*
 * The one HTTP client the Neutron resolver uses for Keystone and Neutron: an undici Agent (a keep-alive
 * pool per origin) with the operator's TLS settings (CA bundle, insecure) and connect/request timeouts.
 * Every call carries a deadline, so a lookup never holds the instance longer than the configured
 * timeout however many upstream calls it needs (token, router interfaces, port). Every failure becomes a
 * MetadataError MDA_ERR_RESOLVER_UNAVAILABLE naming the upstream and a reason; no header value (tokens,
 * passwords) ever goes into it.
 */

import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { MetadataError } from '@nmp/common';
import type { Agent } from 'undici';

// A CommonJS package loaded with require, not import: an ES module importing CommonJS makes node compile
// its CommonJS export scanner (WebAssembly) once per process: 4 MB resident in isolation, 1-2 MB in the proxy.
const undici = createRequire(import.meta.url)('undici') as typeof import('undici');

import type { UpstreamObserver } from '../upstream-observer.js';

export type Upstream = 'keystone' | 'neutron';

export interface UpstreamHttpOptions {
  /** PEM CA bundle to verify servers against (system CAs when absent). */
  readonly ca?: string | Buffer;
  /** Skip certificate verification. */
  readonly insecure: boolean;
  readonly connectTimeoutMs: number;
  /** Longest wait for headers, and between body chunks, of one response. */
  readonly requestTimeoutMs: number;
  /** Keep-alive connections per origin at most. */
  readonly maxConnections: number;
  /** Told about every attempt (latency, answered or failed); for metrics and readiness. */
  readonly observer?: UpstreamObserver;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** Largest response body read (a big cloud's service catalog is well under this). */
const MAX_BODY_BYTES = 8 << 20;

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

export class UpstreamHttp {
  readonly #agent: Agent;
  readonly #observer: UpstreamObserver | undefined;

  constructor(options: UpstreamHttpOptions) {
    this.#observer = options.observer;
    this.#agent = new undici.Agent({
      connections: options.maxConnections,
      keepAliveTimeout: 30_000,
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      connect: {
        timeout: options.connectTimeoutMs,
        rejectUnauthorized: !options.insecure,
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
      },
    });
  }

  /**
   * One request, finished (body read) before `deadline` (epoch ms) or failed with a MetadataError.
   * Any HTTP status is returned; only transport failures throw.
   */
  async request(
    upstream: Upstream,
    url: URL,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
    deadline: number,
  ): Promise<UpstreamResponse> {
    const started = Date.now();
    const where = { upstream, url: `${url.origin}${url.pathname}` };
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw unavailable(where, 'timeout', started);
      const attemptStarted = performance.now();
      try {
        const res = await this.#once(url, init, remaining, where, started);
        this.#observer?.upstreamAnswered(upstream, (performance.now() - attemptStarted) / 1000, res.status);
        return res;
      } catch (err) {
        this.#observer?.upstreamFailed(upstream, (performance.now() - attemptStarted) / 1000);
        if (err instanceof MetadataError) throw err;
        const reason = classify(err, deadline);
        // A kept-alive connection the server closed while we picked it: try once more on a new one
        // (the lookup and the token request are both safe to repeat).
        if (reason === 'connection closed' && attempt === 0) continue;
        throw unavailable(where, reason, started, err);
      }
    }
  }

  async #once(
    url: URL,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
    remaining: number,
    where: Record<string, unknown>,
    started: number,
  ): Promise<UpstreamResponse> {
    const res = await this.#agent.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: init.method,
      headers: init.headers,
      ...(init.body !== undefined ? { body: init.body } : {}),
      signal: AbortSignal.timeout(remaining),
    });
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        res.body.destroy();
        throw unavailable({ ...where, status: res.statusCode }, 'response too large', started);
      }
      chunks.push(chunk as Buffer);
    }
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
  }

  /** Drop every connection; requests in flight fail. */
  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}

/** A MetadataError for an upstream failure; `cause` contributes only its code and message. */
export function unavailable(
  details: Record<string, unknown>,
  reason: string,
  started: number,
  cause?: unknown,
): MetadataError {
  const e = cause as { code?: unknown; message?: unknown; cause?: { code?: unknown } } | undefined;
  const code =
    typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : undefined;
  return new MetadataError('MDA_ERR_RESOLVER_UNAVAILABLE', {
    ...details,
    reason,
    elapsedMs: Date.now() - started,
    ...(code ? { errorCode: code } : {}),
  });
}

function classify(err: unknown, deadline: number): string {
  const e = err as { code?: unknown; name?: unknown; cause?: { code?: unknown } } | undefined;
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect timeout';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  if (e?.name === 'TimeoutError' || code === 'UND_ERR_ABORTED' || Date.now() >= deadline) return 'timeout';
  if (TLS_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL')) return 'tls';
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
    return 'unreachable';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'name resolution';
  if (code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') return 'connection closed';
  return 'unreachable';
}
