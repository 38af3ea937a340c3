/*
 * What the proxy refuses before anything reaches the agent, and why (the `reason` in the log line):
 * - only origin-form targets (`/path?query`): an absolute-form target (`GET http://other/`) or
 *   asterisk-form would make us a forward proxy; CONNECT never reaches here (see proxy.ts);
 * - only HTTP/1.0 and HTTP/1.1 (llhttp also accepts `GET /` as 0.9 and `HTTP/2.0` as a version);
 * - Transfer-Encoding on HTTP/1.0 (RFC 9112 §6.1: the framing is faulty, a classic smuggling shape);
 * - more header lines than the limit (431; Node would silently drop the rest);
 * - a declared body over the limit (413) before a byte of it is read.
 * Malformed framing (Content-Length with Transfer-Encoding, duplicate or invalid Content-Length,
 * obsolete line folding, bad chunks, oversized header blocks, slow requests) is caught by Node's strict
 * parser; parserRefusal() turns its error into our code with a stable reason.
 */
import type { IncomingMessage } from 'node:http';
import { MetadataError } from '@nmp/common';

/** Header lines accepted at most (haproxy's default tune.http.maxhdr is 101). */
export const MAX_HEADER_LINES = 100;

/** The request line and header rules; undefined when the request may go on. */
export function checkRequest(req: IncomingMessage): MetadataError | undefined {
  const url = req.url ?? '';
  if (url.charCodeAt(0) !== 47 /* / */ || url.charCodeAt(1) === 47) {
    return new MetadataError('MDP_ERR_ABSOLUTE_TARGET', {
      reason: 'absolute-form-target',
      target: url.slice(0, 200),
    });
  }
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor > 1) {
    return new MetadataError('MDP_ERR_BAD_REQUEST', { reason: 'http-version', version: req.httpVersion });
  }
  if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) {
    return new MetadataError('MDP_ERR_BAD_REQUEST', { reason: 'transfer-encoding-in-http-1.0' });
  }
  if (req.rawHeaders.length > MAX_HEADER_LINES * 2) {
    return new MetadataError('MDP_ERR_HEADERS_TOO_LARGE', {
      reason: 'too-many-header-lines',
      limit: MAX_HEADER_LINES,
    });
  }
  return undefined;
}

/**
 * How many body bytes to read: 0 for none (the common GET), -1 for a chunked body of unknown length,
 * or a MetadataError (413) when the declared length is over the limit.
 */
export function bodyLength(req: IncomingMessage, limit: number): number | MetadataError {
  const declared = req.headers['content-length'];
  if (declared === undefined) return req.headers['transfer-encoding'] === undefined ? 0 : -1;
  // llhttp has already refused anything that is not a single run of digits.
  const length = Number(declared);
  if (length > limit) {
    return new MetadataError('MDP_ERR_BODY_TOO_LARGE', { reason: 'declared-length', length, limit });
  }
  return length;
}

export function bodyTooLarge(limit: number): MetadataError {
  return new MetadataError('MDP_ERR_BODY_TOO_LARGE', { reason: 'body-grew-over-limit', limit });
}

/** llhttp's error reasons that name a specific smuggling shape. */
const PARSER_REASON_TEXT: ReadonlyArray<readonly [RegExp, string]> = [
  [/can't be present with/, 'content-length-with-transfer-encoding'],
  [/Duplicate Content-Length/, 'duplicate-content-length'],
  [/whitespace after header value/, 'obsolete-line-folding'],
];

/** Reason by llhttp error code when the text above does not say more. */
const PARSER_REASON_CODE: Readonly<Record<string, string>> = {
  HPE_INVALID_CONTENT_LENGTH: 'invalid-content-length',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'duplicate-content-length',
  HPE_INVALID_TRANSFER_ENCODING: 'invalid-transfer-encoding',
  HPE_UNEXPECTED_SPACE: 'obsolete-line-folding',
  HPE_HEADER_OVERFLOW: 'header-block-too-large',
  HPE_INVALID_HEADER_TOKEN: 'invalid-header',
  HPE_INVALID_METHOD: 'invalid-method',
  HPE_INVALID_URL: 'invalid-target',
  HPE_INVALID_CONSTANT: 'invalid-request-line',
  HPE_INVALID_VERSION: 'invalid-version',
  HPE_INVALID_CHUNK_SIZE: 'invalid-chunk',
  HPE_STRICT: 'invalid-chunk',
  HPE_CR_EXPECTED: 'bare-lf',
  HPE_LF_EXPECTED: 'bare-cr',
  HPE_PAUSED_H2_UPGRADE: 'http2-preface',
  HPE_CLOSED_CONNECTION: 'data-after-connection-close',
  HPE_HEADERS_TIMEOUT: 'request-timeout',
  ERR_HTTP_REQUEST_TIMEOUT: 'request-timeout',
};

/** Our answer to an error of Node's HTTP parser (the `clientError` event). */
export function parserRefusal(err: NodeJS.ErrnoException & { reason?: unknown }): MetadataError {
  const parser = err.code ?? 'unknown';
  const text = typeof err.reason === 'string' ? err.reason : '';
  let reason = PARSER_REASON_CODE[parser] ?? 'malformed-request';
  for (const [pattern, name] of PARSER_REASON_TEXT) {
    if (pattern.test(text)) {
      reason = name;
      break;
    }
  }
  const details = text === '' ? { reason, parser } : { reason, parser, parserReason: text };
  if (parser === 'HPE_HEADER_OVERFLOW') return new MetadataError('MDP_ERR_HEADERS_TOO_LARGE', details);
  if (parser === 'ERR_HTTP_REQUEST_TIMEOUT' || parser === 'HPE_HEADERS_TIMEOUT')
    return new MetadataError('MDP_ERR_REQUEST_TIMEOUT', details);
  return new MetadataError('MDP_ERR_BAD_REQUEST', details);
}
