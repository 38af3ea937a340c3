/*
 * What the agent reads from a request: the network or router the proxy stamped, and the source address
 * from the last X-Forwarded-For value (the one the trusted proxy added). Nothing else from the instance
 * is trusted or forwarded. X-OVN-Network-ID (an ovnmeta- namespace's proxy) is a network-mode lookup like
 * X-Neutron-Network-ID: the id is the Neutron network either way, so every resolver can answer it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  HEADER_FORWARDED_FOR,
  HEADER_NETWORK_ID,
  HEADER_OVN_NETWORK_ID,
  HEADER_ROUTER_ID,
  isNeutronId,
  type LookupAddress,
  type LookupQuery,
  MetadataError,
  parseForwardedFor,
} from '@nmp/common';

export interface RequestIdentity {
  readonly query: LookupQuery;
  readonly source: LookupAddress;
}

export function readRequestIdentity(headers: IncomingHttpHeaders): RequestIdentity {
  let network = single(headers[HEADER_NETWORK_ID]);
  const router = single(headers[HEADER_ROUTER_ID]);
  const ovn = single(headers[HEADER_OVN_NETWORK_ID]);
  if (network !== undefined && router !== undefined) {
    throw new MetadataError('MDA_ERR_BOTH_IDS', { network, router });
  }
  if (ovn !== undefined) {
    if (network !== undefined || router !== undefined)
      throw new MetadataError('MDA_ERR_MIXED_IDS', {
        ovnNetwork: ovn.slice(0, 80),
        ...(network !== undefined ? { network: network.slice(0, 80) } : {}),
        ...(router !== undefined ? { router: router.slice(0, 80) } : {}),
      });
    network = ovn;
  }
  if (network === undefined && router === undefined) throw new MetadataError('MDA_ERR_NO_ID');
  const id = (network ?? router)!;
  if (!isNeutronId(id)) throw new MetadataError('MDA_ERR_BAD_ID', { id: id.slice(0, 80) });
  const source = sourceOf(headers[HEADER_FORWARDED_FOR]);
  if (source === undefined) {
    throw new MetadataError('MDA_ERR_BAD_FORWARDED_FOR', {
      forwardedFor: String(headers[HEADER_FORWARDED_FOR] ?? '').slice(0, 120),
    });
  }
  const query: LookupQuery =
    source.mac !== undefined
      ? { mode: network !== undefined ? 'network' : 'router', id, ip: source.ip, mac: source.mac }
      : { mode: network !== undefined ? 'network' : 'router', id, ip: source.ip };
  return { query, source };
}

/**
 * Parsed X-Forwarded-For values by their text: the same few thousand instance addresses come back again
 * and again, and parsing one is the agent's costliest step of its own. Bounded; emptied when full.
 */
const SOURCES = new Map<string, LookupAddress>();
const MAX_SOURCES = 16_384;

function sourceOf(header: string | string[] | undefined): LookupAddress | undefined {
  if (typeof header !== 'string') return parseForwardedFor(header);
  let source = SOURCES.get(header);
  if (source === undefined) {
    source = parseForwardedFor(header);
    if (source === undefined) return undefined;
    if (SOURCES.size >= MAX_SOURCES) SOURCES.clear();
    SOURCES.set(header, source);
  }
  return source;
}

function single(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  // Node joins repeated unknown headers with ", "; a repeated id is malformed and fails isNeutronId.
  return Array.isArray(value) ? value.join(', ') : value.trim();
}
