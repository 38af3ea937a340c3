/*
 * oslo.messaging's transport_url, parsed the way oslo parses it (oslo_messaging/transport.py):
 *
 *   rabbit://USER:PASS@HOST1:5672,USER:PASS@HOST2:5672/VHOST?ssl=1
 *
 * - the netloc is split on ',' into hosts, each with its own optional USER:PASS@ (percent-decoded) and
 *   port (default 5672; IPv6 literals in brackets);
 * - the vhost is the percent-decoded path after the first '/': 'rabbit://h/' and 'rabbit://h' mean '/',
 *   'rabbit://h//' and 'rabbit://h/%2F' mean '/' too (as kombu reads an empty vhost), 'rabbit://h/x' is 'x';
 * - query parameters override [oslo_messaging_rabbit] options of the same name (?ssl=1).
 *
 * The password is a secret: it lives only in RabbitHost.password, and everything meant for people
 * (describeTransport(), error messages) masks it. A URL that does not parse is a ConfigError that never
 * repeats the URL, since the URL holds the password.
 */
import { ConfigError } from '@nmp/common';

export interface RabbitHost {
  readonly hostname: string;
  readonly port: number;
  readonly username: string;
  readonly password: string;
  /** Whether the URL gave credentials for this host (neutron warns when some hosts lack them). */
  readonly hasCredentials: boolean;
}

export interface TransportUrl {
  /** Hosts in the order written. */
  readonly hosts: readonly RabbitHost[];
  readonly vhost: string;
  /** Query parameters (the last value wins when repeated), decoded. */
  readonly query: Readonly<Record<string, string>>;
}

const DEFAULT_PORT = 5672;

export function parseTransportUrl(url: string): TransportUrl {
  const text = url.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  if (!scheme) throw bad('expected rabbit://USER:PASS@HOST:PORT/VHOST');
  const transport = scheme[1]!.toLowerCase();
  if (transport !== 'rabbit' && transport !== 'kombu+rabbit')
    throw bad(
      `the ${transport}:// driver is not supported; the agent speaks AMQP 0-9-1 to RabbitMQ (rabbit://)`,
    );
  let rest = text.slice(scheme[0].length);
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const slash = rest.indexOf('/');
  const netloc = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash) : '';

  const hosts: RabbitHost[] = [];
  for (const [index, part] of netloc.split(',').entries()) {
    if (part === '') continue;
    hosts.push(parseHost(part, index + 1));
  }
  if (hosts.length === 0) throw bad('no host given');

  let vhost = path.startsWith('/') ? decode(path.slice(1), 'the virtual host') : '';
  if (vhost === '') vhost = '/';
  const params: Record<string, string> = {};
  if (query !== '') {
    for (const [k, v] of new URLSearchParams(query)) params[k] = v;
  }
  return { hosts, vhost, query: params };
}

function parseHost(part: string, n: number): RabbitHost {
  let username = '';
  let password = '';
  let hasCredentials = false;
  let hostport = part;
  const at = part.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = part.slice(0, at);
    hostport = part.slice(at + 1);
    const colon = userinfo.indexOf(':');
    if (colon >= 0) {
      username = decode(userinfo.slice(0, colon), `the user name of host ${n}`);
      password = decode(userinfo.slice(colon + 1), `the password of host ${n}`);
      hasCredentials = true;
    } else {
      username = decode(userinfo, `the user name of host ${n}`);
    }
  }
  let hostname: string;
  let portText: string | undefined;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0) throw bad(`host ${n}: an IPv6 address must be closed with ']'`);
    hostname = hostport.slice(1, end);
    const after = hostport.slice(end + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw bad(`host ${n}: expected :PORT after the IPv6 address`);
      portText = after.slice(1);
    }
  } else {
    const colon = hostport.indexOf(':');
    hostname = colon >= 0 ? hostport.slice(0, colon) : hostport;
    portText = colon >= 0 ? hostport.slice(colon + 1) : undefined;
  }
  if (hostname === '') throw bad(`host ${n}: no host name`);
  if (!/^[A-Za-z0-9.:%_-]+$/.test(hostname)) throw bad(`host ${n}: '${hostname}' is not a host name`);
  let port = DEFAULT_PORT;
  if (portText !== undefined && portText !== '') {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      throw bad(`host ${n} (${hostname}): the port must be a number from 1 to 65535`);
    port = Number(portText);
  }
  return {
    hostname,
    port,
    // oslo passes empty credentials for a host without them, and kombu fills what is empty with guest's.
    username: hasCredentials || username !== '' ? username : 'guest',
    password: hasCredentials ? password : 'guest',
    hasCredentials,
  };
}

function decode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw bad(`${what} has a malformed %-escape`);
  }
}

function bad(why: string): ConfigError {
  // Never the URL itself: it holds the password.
  return new ConfigError(`transport_url: ${why}`);
}

/** `host:port` as written in logs, IPv6 in brackets. */
export function hostLabel(h: Pick<RabbitHost, 'hostname' | 'port'>): string {
  return h.hostname.includes(':') ? `[${h.hostname}]:${h.port}` : `${h.hostname}:${h.port}`;
}

/** The URL for people: every password replaced by ****, the query kept (it holds no secret). */
export function describeTransport(t: TransportUrl, tls: boolean): string {
  const hosts = t.hosts
    .map((h) => (h.hasCredentials ? `${encodeURIComponent(h.username)}:****@${hostLabel(h)}` : hostLabel(h)))
    .join(',');
  const vhost = t.vhost === '/' ? '/' : `/${encodeURIComponent(t.vhost)}`;
  const query = Object.keys(t.query).length > 0 ? `?${new URLSearchParams(t.query).toString()}` : '';
  return `rabbit://${hosts}${vhost}${query}${tls ? ' (TLS)' : ''}`;
}
