/*
 * Address handling on both sides of the UNIX socket.
 * - The proxy turns the socket peer into the X-Forwarded-For value (IPv4-mapped unwrapped, zone removed).
 * - The agent turns the trusted (last) X-Forwarded-For value into a lookup key: an IP address, or for
 *   IPv6 link-local sources the MAC address derived from the EUI-64 interface id (reference.md §3.2, §12.2).
 */
import { createRequire } from 'node:module';
import type ipaddrModule from 'ipaddr.js';

// A CommonJS package loaded with require, not import: an ES module importing CommonJS makes node compile
// its CommonJS export scanner (WebAssembly) once per process: 4 MB resident in isolation, 1-2 MB in the proxy.
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof ipaddrModule;

/**
 * X-Forwarded-For value for a socket peer address as Node reports it. Runs once per request, so it
 * avoids parsing: Node already gives a canonical textual address.
 */
export function forwardedForFromPeer(remoteAddress: string | undefined): string | undefined {
  if (remoteAddress === undefined || remoteAddress === '') return undefined;
  let addr = remoteAddress;
  const zone = addr.indexOf('%');
  if (zone !== -1) addr = addr.slice(0, zone);
  if (addr.length > 7 && addr.charCodeAt(0) === 58 /* : */) {
    const lower = addr.toLowerCase();
    if (lower.startsWith('::ffff:') && addr.indexOf('.') !== -1) return addr.slice(7);
  }
  return addr;
}

export interface LookupAddress {
  /** Normalised IP address (IPv4-mapped unwrapped, zone removed, canonical form). */
  readonly ip: string;
  /** For IPv6 link-local sources: the MAC from the EUI-64 interface id; the lookup uses it instead of the IP. */
  readonly mac?: string;
  /** The value as received, which is what Nova gets in X-Forwarded-For. */
  readonly raw: string;
}

/**
 * Parse the value the trusted proxy added. Several values (a client's own plus the proxy's, as neutron's
 * haproxy appends) are comma-joined by the HTTP layer: the last one is the proxy's. Returns undefined when
 * the value is missing or is not an IP address.
 */
export function parseForwardedFor(header: string | readonly string[] | undefined): LookupAddress | undefined {
  if (header === undefined) return undefined;
  const joined = typeof header === 'string' ? header : header.join(',');
  const comma = joined.lastIndexOf(',');
  const raw = (comma === -1 ? joined : joined.slice(comma + 1)).trim();
  if (raw === '' || raw.length > 64) return undefined;
  const zone = raw.indexOf('%');
  const text = zone === -1 ? raw : raw.slice(0, zone);
  if (!ipaddr.isValid(text)) return undefined;
  let parsed: ipaddrModule.IPv4 | ipaddrModule.IPv6;
  try {
    // isValid accepts legacy IPv4 shapes (octal, short forms); insist on the four-part dotted form.
    parsed = ipaddr.parse(text);
    if (parsed.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined;
  } catch {
    return undefined;
  }
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddrModule.IPv6;
    if (v6.isIPv4MappedAddress()) return { ip: v6.toIPv4Address().toString(), raw };
    if (v6.range() === 'linkLocal') return { ip: v6.toString(), mac: macFromEui64(v6), raw };
    return { ip: v6.toString(), raw };
  }
  return { ip: parsed.toString(), raw };
}

/** MAC from an EUI-64 interface id: flip the universal/local bit and drop the ff:fe in the middle. */
export function macFromEui64(address: ipaddrModule.IPv6 | string): string {
  const v6 = typeof address === 'string' ? ipaddr.IPv6.parse(address) : address;
  const b = v6.toByteArray();
  const mac = [b[8]! ^ 0x02, b[9]!, b[10]!, b[13]!, b[14]!, b[15]!];
  return mac.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Lower-case, colon-separated MAC, or undefined if the text is not a MAC address. */
export function normaliseMac(mac: string): string | undefined {
  const m =
    /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(
      mac.trim(),
    );
  return m ? m.slice(1).join(':').toLowerCase() : undefined;
}

/** Canonical text of an IP address (so that 2001:DB8::05 and 2001:db8::5 compare equal), or undefined. */
export function canonicalIp(text: string): string | undefined {
  if (!ipaddr.isValid(text)) return undefined;
  const parsed = ipaddr.parse(text);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddrModule.IPv6).isIPv4MappedAddress()) {
    return (parsed as ipaddrModule.IPv6).toIPv4Address().toString();
  }
  return parsed.toString();
}
