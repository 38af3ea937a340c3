/*
 * The hop to Nova's metadata API: one keep-alive pool (http or https, optional client certificate),
 * the mapping of transport failures to our stable errors (unreachable 503, slow 504, garbage 502), the
 * time each call took until Nova's headers (for the upstream latency metric and readiness), and a probe
 * for readiness (GET /, which Nova answers without identity headers).
 */
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { formatHostPort, MetadataError } from '@nmp/common';
import type { Dispatcher, Pool } from 'undici';

// A CommonJS package loaded with require, not import: an ES module importing CommonJS makes node compile
// its CommonJS export scanner (WebAssembly) once per process: 4 MB resident in isolation, 1-2 MB in the proxy.
const undici = createRequire(import.meta.url)('undici') as typeof import('undici');

import type { UpstreamObserver } from './upstream-observer.js';

export interface NovaClientOptions {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'http' | 'https';
  readonly insecure?: boolean;
  /** PEM CA bundle (auth_ca_cert, read by agentSettings); system CAs when undefined. */
  readonly ca?: string;
  /** PEM client certificate and its key (nova_client_cert, nova_client_priv_key): both or neither. */
  readonly clientCert?: string;
  readonly clientKey?: string;
  /** Milliseconds for connecting and for the answer's headers and body gaps. */
  readonly timeoutMs: number;
  readonly connections?: number;
  /** Told about every call (latency, answered or failed). */
  readonly observer?: UpstreamObserver;
}

export interface NovaRequest {
  readonly method: string;
  /** Path and query, as the instance sent them. */
  readonly path: string;
  /** undici's flat [name, value, ...] form or an object. */
  readonly headers: Record<string, string> | string[];
  readonly body: Buffer | null;
}

export type NovaResponse = Dispatcher.ResponseData;

const PROBE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  accept: '*/*',
  'user-agent': 'nmp-metadata-agent readiness probe',
});

export class NovaClient {
  readonly origin: string;
  readonly #pool: Pool;
  readonly #observer: UpstreamObserver | undefined;

  constructor(options: NovaClientOptions) {
    // An IPv6 literal may be given bracketed already (as in a URL).
    const host = options.host.startsWith('[') ? options.host.slice(1, -1) : options.host;
    this.origin = `${options.protocol}://${formatHostPort(host, options.port)}`;
    this.#observer = options.observer;
    const tls: Record<string, unknown> = {};
    if (options.protocol === 'https') {
      tls.rejectUnauthorized = !options.insecure;
      if (options.ca) tls.ca = options.ca;
      if (options.clientCert && options.clientKey) {
        tls.cert = options.clientCert;
        tls.key = options.clientKey;
      }
    }
    this.#pool = new undici.Pool(this.origin, {
      connections: options.connections ?? 64,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect: { timeout: options.timeoutMs, ...tls },
    });
  }

  /**
   * The hot path: send one request and hand Nova's answer, as it arrives, to `handler` (no intermediate
   * stream, promise or abort signal). The handler maps failures with novaError() and reports timing.
   */
  dispatch(req: NovaRequest, handler: Dispatcher.DispatchHandler): void {
    this.#pool.dispatch(
      { method: req.method as Dispatcher.HttpMethod, path: req.path, headers: req.headers, body: req.body },
      handler,
    );
  }

  get observer(): UpstreamObserver | undefined {
    return this.#observer;
  }

  /**
   * Readiness probe: GET / (Nova lists its versions without identity headers). Resolves with the status
   * of any HTTP answer; rejects with a MetadataError when Nova cannot be reached within `timeoutMs`.
   */
  async probe(timeoutMs: number): Promise<number> {
    const started = performance.now();
    let answer: NovaResponse;
    try {
      answer = await this.#pool.request({
        method: 'GET',
        path: '/',
        headers: PROBE_HEADERS,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      this.#observer?.upstreamFailed('nova', (performance.now() - started) / 1000);
      const e = err as { name?: string };
      throw e?.name === 'TimeoutError' || e?.name === 'AbortError'
        ? new MetadataError('MDA_ERR_NOVA_TIMEOUT', { upstream: 'nova', cause: 'probe timeout' })
        : novaError(err);
    }
    await answer.body.dump().catch(() => {});
    this.#observer?.upstreamAnswered('nova', (performance.now() - started) / 1000, answer.statusCode);
    return answer.statusCode;
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/** Map an undici/network failure talking to Nova to one of our codes. */
export function novaError(err: unknown): MetadataError {
  const e = err as { code?: string; message?: string; name?: string };
  const details = { upstream: 'nova', cause: e?.code ?? e?.message ?? String(err) };
  if (e?.name === 'HTTPParserError')
    return new MetadataError('MDA_ERR_NOVA_BAD_RESPONSE', details, { cause: err });
  switch (e?.code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new MetadataError('MDA_ERR_NOVA_TIMEOUT', details, { cause: err });
    case 'UND_ERR_SOCKET':
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_VERSION':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_INFO':
      return new MetadataError('MDA_ERR_NOVA_BAD_RESPONSE', details, { cause: err });
    default:
      if (typeof e?.code === 'string' && e.code.startsWith('HPE_')) {
        return new MetadataError('MDA_ERR_NOVA_BAD_RESPONSE', details, { cause: err });
      }
      // ECONNREFUSED, ENOTFOUND, EHOSTUNREACH, TLS failures, connect timeout: Nova cannot be reached.
      return new MetadataError('MDA_ERR_NOVA_UNREACHABLE', details, { cause: err });
  }
}
