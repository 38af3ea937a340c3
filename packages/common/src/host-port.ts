/*
 * Addresses with a port, both ways, for every program here.
 * - Reading: bind specifications as operators and neutron write them: `169.254.169.254:80`, `0.0.0.0:9697`,
 *   `[::]:9697` (dual-stack), `[fe80::a9fe:a9fe%tap0]:80` (link-local needs its interface), `:::9697`
 *   (haproxy's form: the last colon separates the port).
 * - Writing: `127.0.0.1:80`, `[::]:9697`, `[fe80::a9fe:a9fe%tap0]:80`, in logs, status, URLs and bind
 *   specifications.
 */
import { type AddressInfo, isIP } from 'node:net';
import type { ProgramErrorCode } from './errors.js';

export interface BindAddress {
  readonly host: string;
  readonly port: number;
  /** Interface for an IPv6 link-local address (the zone). */
  readonly zone?: string;
  /** Text as given, for logs. */
  readonly spec: string;
}

export class BindSpecError extends Error {
  readonly code = 'NMP_ERR_BIND' satisfies ProgramErrorCode;
  constructor(spec: string, why: string) {
    super(`invalid bind address '${spec}': ${why}`);
    this.name = 'BindSpecError';
  }
}

export function parseBind(spec: string, interfaceName?: string): BindAddress {
  const text = spec.trim();
  let host: string;
  let portText: string;
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2]!;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) throw new BindSpecError(spec, 'expected ADDRESS:PORT');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host === '') host = '0.0.0.0';
  }
  if (!/^\d+$/.test(portText)) throw new BindSpecError(spec, 'port is not a number');
  const port = Number(portText);
  if (port > 65535) throw new BindSpecError(spec, 'port must be 0-65535 (0: any free port)');
  let zone: string | undefined = interfaceName;
  const pct = host.indexOf('%');
  if (pct !== -1) {
    zone = host.slice(pct + 1);
    host = host.slice(0, pct);
    if (zone === '') throw new BindSpecError(spec, 'empty interface after %');
  }
  if (host === '*') host = '0.0.0.0';
  const family = isIP(host);
  if (family === 0) throw new BindSpecError(spec, `'${host}' is not an IP address`);
  if (zone !== undefined && !/^[A-Za-z0-9_.@-]{1,15}$/.test(zone))
    throw new BindSpecError(spec, 'bad interface name');
  if (family === 6 && /^fe[89ab]/i.test(host) && zone === undefined) {
    throw new BindSpecError(spec, 'a link-local IPv6 address needs an interface: [fe80::...%dev]:port');
  }
  return zone !== undefined && family === 6 ? { host, port, zone, spec: text } : { host, port, spec: text };
}

/** The host string Node's listen() takes, with the zone appended for link-local addresses. */
export function listenHost(b: BindAddress): string {
  return b.zone !== undefined ? `${b.host}%${b.zone}` : b.host;
}

/** `host:port`, with an IPv6 host (and its zone, when given) in brackets: `[fe80::1%tap0]:80`. */
export function formatHostPort(host: string, port: number | string, zone?: string): string {
  if (!host.includes(':')) return `${host}:${port}`;
  return zone === undefined || zone === '' ? `[${host}]:${port}` : `[${host}%${zone}]:${port}`;
}

/**
 * How a socket is named in status, logs and answers: `127.0.0.1:80`, `[::]:9697`, `[fe80::a9fe:a9fe]:80`
 * (as /proc shows them). A link-local zone is left out: outside the socket's namespace the kernel's
 * interface index would be resolved to the name of an unrelated device; the bind specification names the
 * right one. A string (a UNIX socket path) or null (not listening) is shown as it is.
 */
export function formatAddress(
  a:
    | Pick<AddressInfo, 'address' | 'port'>
    | { address: string; port: number; family?: string }
    | string
    | null,
): string {
  if (a === null || typeof a === 'string') return String(a);
  const pct = a.address.indexOf('%');
  return formatHostPort(pct === -1 ? a.address : a.address.slice(0, pct), a.port);
}
