/*
 * What the proxy lets through to the agent. Every client copy of an identity header (any case, any count)
 * and every hop-by-hop header (and Expect) is dropped; then the proxy stamps its own X-Forwarded-For (the socket peer),
 * exactly one of X-Neutron-Network-ID / X-Neutron-Router-ID / X-OVN-Network-ID, and the request id.
 * OVN mode differs from neutron's OVN haproxy on purpose: that one only *adds* X-OVN-Network-ID, so an
 * instance's own copy reaches the agent too (reference.md §15); here every client copy is deleted first.
 * Works on rawHeaders so nothing the client sent is merged or reinterpreted along the way.
 */
import {
  HEADER_FORWARDED_FOR,
  HEADER_REQUEST_ID,
  HOP_BY_HOP_HEADERS,
  IDENTITY_HEADER_NAME,
  IDENTITY_HEADERS,
  type ProxyIdentity,
} from '@nmp/common';
import { TOKEN_HEADERS } from './header-names.js';

/**
 * Every request header the agent must never see, in one set (one lookup per header): identity headers,
 * hop-by-hop headers, Expect (node answered 100-continue to the instance already) and the session
 * token headers of the SSRF defences (they stay at the proxy in every mode).
 */
const DROPPED_HEADERS: ReadonlySet<string> = new Set([
  ...IDENTITY_HEADERS,
  ...HOP_BY_HOP_HEADERS,
  'expect',
  ...TOKEN_HEADERS,
]);

/**
 * Headers for the agent as a flat [name, value, ...] array, sent as they are: the client's allowed
 * headers in their order, then ours. Headers named in the client's Connection header are dropped too.
 * A request without Host gets `Host: localhost` (the agent's HTTP/1.1 server requires one), and a body
 * read whole gets its Content-Length if the client framed it otherwise (chunked).
 */
export function agentRequestHeaders(
  rawHeaders: readonly string[],
  identity: ProxyIdentity,
  forwardedFor: string,
  requestId: string,
  body: Buffer | null = null,
): string[] {
  const out: string[] = [];
  let connectionNamed: Set<string> | undefined;
  let host = false;
  let length = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'host') host = true;
    else if (name === 'content-length') length = true;
    if (name === 'connection') {
      for (const token of rawHeaders[i + 1]!.split(',')) {
        const t = token.trim().toLowerCase();
        if (t === '' || t === 'close' || t === 'keep-alive') continue;
        connectionNamed ??= new Set();
        connectionNamed.add(t);
      }
      continue;
    }
    // Expect: node has already answered 100-continue; the agent must not wait for it.
    if (DROPPED_HEADERS.has(name)) continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  if (connectionNamed !== undefined) {
    const kept: string[] = [];
    for (let i = 0; i < out.length; i += 2) {
      const lower = out[i]!.toLowerCase();
      if (!connectionNamed.has(lower) || lower === 'host' || lower === 'content-length')
        kept.push(out[i]!, out[i + 1]!);
    }
    out.length = 0;
    out.push(...kept);
  }
  if (!host) out.push('host', 'localhost');
  if (body !== null && !length) out.push('content-length', String(body.length));
  out.push(
    HEADER_FORWARDED_FOR,
    forwardedFor,
    IDENTITY_HEADER_NAME[identity.mode],
    identity.id,
    HEADER_REQUEST_ID,
    requestId,
  );
  return out;
}

/** Response headers for the instance: the agent's, minus hop-by-hop ones. */
export function instanceResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v !== undefined && !HOP_BY_HOP_HEADERS.has(name)) out[name] = v;
  }
  return out;
}
