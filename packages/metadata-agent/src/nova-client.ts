/*
 * The hop to Nova's metadata API: one keep-alive pool (http or https, optional client certificate),
 * and the mapping of transport failures to our stable errors (unreachable 503, slow 504, garbage 502).
 */
import { readFileSync } from 'node:fs';
import { MetadataError } from '@nmp/common';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';

export interface NovaClientOptions {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'http' | 'https';
  readonly insecure?: boolean;
  readonly caFile?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
  /** Milliseconds for connecting and for the answer's headers and body gaps. */
  readonly timeoutMs: number;
  readonly connections?: number;
}

export interface NovaRequest {
  readonly method: string;
  /** Path and query, as the instance sent them. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer | null;
}

export type NovaResponse = Dispatcher.ResponseData;

export class NovaClient {
  readonly origin: string;
  readonly #pool: Pool;

  constructor(options: NovaClientOptions) {
    const host =
      options.host.includes(':') && !options.host.startsWith('[') ? `[${options.host}]` : options.host;
    this.origin = `${options.protocol}://${host}:${options.port}`;
    const tls: Record<string, unknown> = {};
    if (options.protocol === 'https') {
      tls.rejectUnauthorized = !options.insecure;
      if (options.caFile) tls.ca = readFileSync(options.caFile);
      // Mutual TLS only when both halves are configured, as neutron does.
      if (options.clientCert && options.clientKey) {
        tls.cert = readFileSync(options.clientCert);
        tls.key = readFileSync(options.clientKey);
      }
    }
    this.#pool = new Pool(this.origin, {
      connections: options.connections ?? 64,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect: { timeout: options.timeoutMs, ...tls },
    });
  }

  /** Send one request; transport failures become MetadataErrors, any HTTP status is a normal answer. */
  async request(req: NovaRequest): Promise<NovaResponse> {
    try {
      return await this.#pool.request({
        method: req.method as Dispatcher.HttpMethod,
        path: req.path,
        headers: req.headers,
        body: req.body,
      });
    } catch (err) {
      throw novaError(err);
    }
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
