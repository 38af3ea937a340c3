/*
 * Request-line and body rules the proxy enforces before anything reaches the agent:
 * - only origin-form targets (`/path?query`): an absolute-form target (`GET http://other/`) or
 *   asterisk-form would make us a forward proxy; CONNECT never reaches here (see proxy.ts);
 * - the body is counted as it streams and cut off at the limit (413), whatever the framing.
 */
import type { IncomingMessage } from 'node:http';
import { MetadataError } from '@nmp/common';

export function checkRequestTarget(req: IncomingMessage): void {
  const url = req.url ?? '';
  if (url.charCodeAt(0) !== 47 /* / */ || url.startsWith('//')) {
    throw new MetadataError('MDP_ERR_ABSOLUTE_TARGET', { target: url.slice(0, 200) });
  }
}

/** Counts body bytes as they go to the agent; exceeding the limit aborts the upstream request. */
export class BodyLimit {
  exceeded = false;

  private constructor(private readonly limit: number) {}

  /** null when the request has no body (the common case: GET without Content-Length or chunks). */
  static forRequest(req: IncomingMessage, limit: number): BodyLimit | null {
    const length = req.headers['content-length'];
    if (length === undefined && req.headers['transfer-encoding'] === undefined) return null;
    if (length === '0') return null;
    if (length !== undefined && Number(length) > limit) {
      throw new MetadataError('MDP_ERR_BODY_TOO_LARGE', { length, limit });
    }
    return new BodyLimit(limit);
  }

  error(): MetadataError {
    return new MetadataError('MDP_ERR_BODY_TOO_LARGE', { limit: this.limit });
  }

  async *body(req: IncomingMessage): AsyncGenerator<Buffer> {
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.limit) {
        this.exceeded = true;
        throw this.error();
      }
      yield chunk;
    }
  }
}
