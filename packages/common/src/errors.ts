/*
 * One table of every failure the chain reports, each with a stable code, the HTTP status the instance
 * receives, the level it is logged at and the plain-text message in the body (ERRORS), and one of the
 * errors no instance is answered with: a program's configuration, its commands, its clients of OVSDB and
 * of the daemon (PROGRAM_ERRORS; each Error class another package catches, or whose message reaches a log
 * line or an exit message, carries one of these as `code`). Codes are never reused or renumbered:
 * operators alert on them. docs/errors.md is generated from these tables; log-events.ts has the codes of
 * log lines that report no failure.
 */
import type { ProgramName } from './log-events.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface ErrorSpec {
  /** HTTP status sent to the instance. */
  readonly status: number;
  /** Level of the log line written when this happens. */
  readonly level: LogLevel;
  /** Body sent to the instance; `{network}` / `{router}` / `{id}` are filled in from the details. */
  readonly message: string;
  /** One sentence for docs/errors.md: when it happens and what to look at. */
  readonly doc: string;
}

export const ERRORS = {
  // ns-metadata-proxy
  MDP_ERR_AGENT_UNREACHABLE: {
    status: 503,
    level: 'error',
    message: 'No server is available to handle this request.',
    doc: 'The agent socket is missing or refuses connections: is the metadata-agent running, and is the socket path the same on both sides?',
  },
  MDP_ERR_AGENT_TIMEOUT: {
    status: 504,
    level: 'error',
    message: "The server didn't respond in time.",
    doc: 'The agent accepted the request but did not answer within the upstream timeout (default 32 s).',
  },
  MDP_ERR_AGENT_BAD_RESPONSE: {
    status: 502,
    level: 'error',
    message: 'The server returned an invalid or incomplete response.',
    doc: 'The agent closed the connection before a complete answer, or answered something that is not HTTP.',
  },
  MDP_ERR_BAD_REQUEST: {
    status: 400,
    level: 'warn',
    message: 'Bad request.',
    doc: 'The instance sent a request that is not well-formed HTTP/1.1 or that the proxy refuses to forward.',
  },
  MDP_ERR_ABSOLUTE_TARGET: {
    status: 400,
    level: 'warn',
    message: 'Only origin-form request targets are accepted.',
    doc: 'The instance tried to use the metadata proxy as a forward proxy (absolute-form target or CONNECT).',
  },
  MDP_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    level: 'warn',
    message: 'Request header fields too large.',
    doc: 'The request header block exceeded the configured limit (default 16 KiB).',
  },
  MDP_ERR_BODY_TOO_LARGE: {
    status: 413,
    level: 'warn',
    message: 'Request body too large.',
    doc: 'The request body exceeded the configured limit (default 64 KiB).',
  },
  MDP_ERR_REQUEST_TIMEOUT: {
    status: 408,
    level: 'warn',
    message: "Your browser didn't send a complete request in time.",
    doc: 'The instance did not send a complete request within the header timeout (default 30 s).',
  },
  MDP_ERR_RATE_LIMITED: {
    status: 429,
    level: 'info',
    message: 'You have sent too many requests in a given amount of time.',
    doc: 'The source address exceeded the base or burst rate limit of [metadata_rate_limiting].',
  },
  MDP_ERR_TOO_MANY_CONNECTIONS: {
    status: 503,
    level: 'warn',
    message: 'Too many connections.',
    doc: 'The proxy already holds its maximum of client connections (default 1024); the new one was closed at once.',
  },
  MDP_ERR_TOO_MANY_SOURCE_CONNECTIONS: {
    status: 503,
    level: 'warn',
    message: 'Too many connections from this address.',
    doc: 'The source address already holds max_connections_per_source connections to this proxy (default 100; per namespace in daemon mode); the new one was closed at once, unread and unanswered, so one instance cannot lock the others of its network out.',
  },
  MDP_ERR_FIRST_BYTE_TIMEOUT: {
    status: 408,
    level: 'warn',
    message: "Your browser didn't send a complete request in time.",
    doc: 'A client connection sent nothing within timeout_first_byte of being accepted (default 5 s) and was closed without an answer: idle connections held open to exhaust the proxy. A real client sends its request at once.',
  },
  MDP_ERR_CLIENT_GONE: {
    status: 499,
    level: 'info',
    message: 'Client closed request.',
    doc: 'Not an answer (499 as nginx logs a closed request; nothing is sent, the log line says status 0): the instance closed its connection before the proxy forwarded its request, so the agent was never asked (a client that gave up, e.g. cloud-init past its timeout under a boot storm); counted in nmp_proxy_client_gone_total.',
  },
  // ns-metadata-proxy, opt-in SSRF defences ([metadata_ssrf], docs/security.md)
  MDP_ERR_TOKEN_TTL_INVALID: {
    status: 400,
    level: 'warn',
    message: 'X-aws-ec2-metadata-token-ttl-seconds must be a whole number of seconds from 1 to 21600.',
    doc: 'A token request (PUT /latest/api/token) without a valid X-aws-ec2-metadata-token-ttl-seconds; only with [metadata_ssrf] token_mode optional or required.',
  },
  MDP_ERR_TOKEN_MISSING: {
    status: 401,
    level: 'info',
    message:
      'A session token is required: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds, then send it in X-aws-ec2-metadata-token.',
    doc: 'token_mode = required and the request carried no X-aws-ec2-metadata-token (cloud-init and other clients that do not fetch tokens get this).',
  },
  MDP_ERR_TOKEN_INVALID: {
    status: 401,
    level: 'info',
    message: 'The session token is not valid.',
    doc: 'The X-aws-ec2-metadata-token was not issued by this node key for this source address and network or router (or is malformed, or sent twice); also in optional mode.',
  },
  MDP_ERR_TOKEN_EXPIRED: {
    status: 401,
    level: 'info',
    message: 'The session token has expired.',
    doc: 'A genuine X-aws-ec2-metadata-token past its TTL; the client should fetch a new one.',
  },
  MDP_ERR_FORWARDED_REQUEST: {
    status: 403,
    level: 'warn',
    message: 'Forwarded requests are not accepted.',
    doc: 'The request carried X-Forwarded-For or Forwarded: a proxy inside the guest relayed it (refused for token requests always, for all requests with refuse_forwarded_for).',
  },
  MDP_ERR_HEADER_MISSING: {
    status: 403,
    level: 'info',
    message: 'A required request header is missing or wrong.',
    doc: 'required_header is set and the request carried neither that header with that value nor a valid session token.',
  },
  MDP_ERR_PATH_DENIED: {
    status: 403,
    level: 'warn',
    message: 'Access to this path is not allowed.',
    doc: 'The path is in path_deny, not in a non-empty path_allow, or cannot be checked safely (dot segments, encoded slashes).',
  },
  MDP_ERR_INTERNAL: {
    status: 500,
    level: 'error',
    message: 'An unknown error has occurred. Please try your request again.',
    doc: 'A bug in the proxy; the process keeps serving. Please report it with the log line.',
  },

  // metadata-agent
  MDA_ERR_BOTH_IDS: {
    status: 400,
    level: 'warn',
    message: 'Both network {network} and router {router} defined.',
    doc: 'The request carried both X-Neutron-Network-ID and X-Neutron-Router-ID; the proxy in front is misconfigured.',
  },
  MDA_ERR_NO_ID: {
    status: 400,
    level: 'warn',
    message: 'Neither X-Neutron-Network-ID nor X-Neutron-Router-ID (nor X-OVN-Network-ID) was given.',
    doc: 'The request reached the agent without an identity header: something other than the proxy talks to the socket.',
  },
  MDA_ERR_MIXED_IDS: {
    status: 400,
    level: 'warn',
    message: 'X-OVN-Network-ID cannot be combined with X-Neutron-Network-ID or X-Neutron-Router-ID.',
    doc: 'The request carried the OVN identity header and a Neutron one; the proxy in front is misconfigured (ours stamps exactly one).',
  },
  MDA_ERR_BAD_ID: {
    status: 400,
    level: 'warn',
    message: 'Invalid network or router id.',
    doc: 'The network or router id header is not a single well-formed id.',
  },
  MDA_ERR_BAD_FORWARDED_FOR: {
    status: 400,
    level: 'warn',
    message: 'Invalid or missing X-Forwarded-For.',
    doc: 'The last X-Forwarded-For value is missing or not an IP address.',
  },
  MDA_ERR_PORT_NOT_FOUND: {
    status: 404,
    level: 'warn',
    message: 'Instance was not found on {target}.',
    doc: 'No port with a device on the network/router has the source address (or MAC, for link-local IPv6).',
  },
  MDA_ERR_PORT_AMBIGUOUS: {
    status: 404,
    level: 'error',
    message: 'Instance was not found on {target}.',
    doc: 'Several ports with a device match the source address; Neutron data is inconsistent.',
  },
  MDA_ERR_RESOLVER_UNAVAILABLE: {
    status: 503,
    level: 'error',
    message: 'The instance lookup service is temporarily unavailable. Please try again later.',
    doc: 'Neutron (or Keystone) did not answer, answered 5xx, or timed out while looking up the port; or Keystone refused the [neutron] credentials, or the token has no network endpoint in its catalog (then lookups get this at once until the agent asks Keystone again, at retryAt: docs/neutron.md "Tokens").',
  },
  MDA_ERR_RPC_TIMEOUT: {
    status: 503,
    level: 'error',
    message: 'The instance lookup service is temporarily unavailable. Please try again later.',
    doc: 'resolver = rpc: RabbitMQ took the get_ports call but no neutron-server answered within rpc_lookup_timeout (neutron-server down, overloaded, or not consuming q-plugin).',
  },
  MDA_ERR_RPC_UNAVAILABLE: {
    status: 503,
    level: 'error',
    message: 'The instance lookup service is temporarily unavailable. Please try again later.',
    doc: 'resolver = rpc: no connection to any RabbitMQ host of transport_url within rpc_lookup_timeout (broker down, network cut, refused credentials), or no queue is bound to q-plugin (no neutron-server on this control_exchange and vhost).',
  },
  MDA_ERR_RPC_REMOTE_ERROR: {
    status: 503,
    level: 'error',
    message: 'The instance lookup service is temporarily unavailable. Please try again later.',
    doc: "resolver = rpc: neutron-server answered get_ports with an exception; the log line has its class and message, neutron-server's log the traceback.",
  },
  MDA_ERR_NOVA_UNREACHABLE: {
    status: 503,
    level: 'error',
    message: 'The remote metadata server is temporarily unavailable. Please try again later.',
    doc: 'Connection to the Nova metadata API refused, reset, or TLS failed.',
  },
  MDA_ERR_NOVA_TIMEOUT: {
    status: 504,
    level: 'error',
    message: 'The remote metadata server did not respond in time.',
    doc: 'Nova did not answer within the upstream timeout.',
  },
  MDA_ERR_NOVA_BAD_RESPONSE: {
    status: 502,
    level: 'error',
    message: 'The remote metadata server returned an invalid response.',
    doc: 'Nova answered something that is not valid HTTP or closed the connection mid-answer.',
  },
  MDA_ERR_NOVA_FORBIDDEN: {
    status: 403,
    level: 'warn',
    message: 'Access was denied to this resource.',
    doc: 'Nova answered 403: the shared secret of the agent and of Nova ([neutron] metadata_proxy_shared_secret) probably differ.',
  },
  MDA_ERR_BODY_TOO_LARGE: {
    status: 413,
    level: 'warn',
    message: 'Request body too large.',
    doc: 'The request body sent to the agent exceeded the configured limit.',
  },
  MDA_ERR_CLIENT_GONE: {
    status: 499,
    level: 'info',
    message: 'Client closed request.',
    doc: 'Not an answer (499 as nginx logs a closed request; nothing is sent, the log line says status 0): the proxy closed the connection (its instance had gone) before the agent started the port lookup or the Nova request, so neither was made; a lookup already under way still finishes and fills the cache. Counted in nmp_agent_client_gone_total.',
  },
  MDA_ERR_INTERNAL: {
    status: 500,
    level: 'error',
    message: 'An unknown error has occurred. Please try your request again.',
    doc: 'A bug in the agent; the process keeps serving. Please report it with the log line.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export interface ProgramErrorSpec {
  /** The programs that throw it (or whose clients do). */
  readonly programs: readonly ProgramName[];
  /** One sentence for docs/errors.md: when it happens and what to look at. */
  readonly doc: string;
}

const EVERY_PROGRAM = [
  'metadata-agent',
  'ns-metadata-proxy',
  'metadata-hooks',
  'metadata-proxy-daemon',
  'ovn-metadata-provisioner',
] as const;
const HOST_PROGRAMS = ['metadata-hooks', 'metadata-proxy-daemon', 'ovn-metadata-provisioner'] as const;
const OVSDB_PROGRAMS = ['metadata-agent', 'ovn-metadata-provisioner'] as const;
const PROXIES = ['ns-metadata-proxy', 'metadata-proxy-daemon'] as const;
const DAEMON_CLIENTS = ['metadata-hooks', 'metadata-proxy-daemon', 'ovn-metadata-provisioner'] as const;

/** Failures no instance is answered with: the `code` of the Error classes programs throw to each other. */
export const PROGRAM_ERRORS = {
  // Every program
  NMP_ERR_CONFIG: {
    programs: EVERY_PROGRAM,
    doc: 'A configuration value, file or combination is refused at start (or on SIGHUP); the message names the file and line, section, option and value. Exit status 2.',
  },
  NMP_ERR_INI_SYNTAX: {
    programs: EVERY_PROGRAM,
    doc: 'A config file is not oslo-style INI (the message has the file and line); reported as NMP_ERR_CONFIG.',
  },
  NMP_ERR_USAGE: {
    programs: EVERY_PROGRAM,
    doc: "The command line is wrong (unknown flag, missing argument); see the program's --help. Exit status 2.",
  },
  NMP_ERR_BIND: {
    programs: ['ns-metadata-proxy', 'metadata-proxy-daemon', 'metadata-hooks'],
    doc: 'A bind address that is not ADDRESS:PORT, [IPV6]:PORT or IPV6%DEVICE:PORT.',
  },
  // Host plumbing (packages/host)
  NMP_ERR_COMMAND: {
    programs: HOST_PROGRAMS,
    doc: 'A command (ip, sysctl, the proxy) exited non-zero; the message has its argv, exit status and the start of its output.',
  },
  NMP_ERR_PROXY_START: {
    programs: HOST_PROGRAMS,
    doc: 'A per-namespace ns-metadata-proxy did not come up (exited, or did not write its pid file in time); the message ends with its output.',
  },
  // metadata-hooks
  MDH_ERR_HOOK: {
    programs: ['metadata-hooks'],
    doc: 'A hook was called with arguments it cannot use (an invalid network/router id or device name, a namespace that does not exist, a bind it cannot read).',
  },
  MDH_ERR_DROP_IN: {
    programs: ['metadata-hooks'],
    doc: '`haproxy-drop-in enable|disable` refused: not root, the nmp wrapper missing, haproxy diverted by another package, or a kill script in the way that is not ours.',
  },
  // metadata-proxy-daemon and its clients
  MDP_ERR_DAEMON_UNREACHABLE: {
    programs: DAEMON_CLIENTS,
    doc: "Nobody answers on the daemon's control socket (is metadata-proxy-daemon running, with the same daemon_socket?); `errno` says how the connection failed.",
  },
  MDP_ERR_DAEMON_REFUSED: {
    programs: DAEMON_CLIENTS,
    doc: 'The daemon refused a control request (attach, detach, status); the message is its reason.',
  },
  MDP_ERR_DAEMON_PROTOCOL: {
    programs: DAEMON_CLIENTS,
    doc: 'A control-socket message that is not valid JSON of the control protocol, or lacks a field; refused.',
  },
  // ns-metadata-proxy
  MDP_ERR_HAPROXY_CONFIG: {
    programs: ['ns-metadata-proxy', 'metadata-hooks'],
    doc: 'The haproxy configuration neutron generated (--haproxy-config, haproxy-compat) has a line the proxy cannot use; the message has the file and line.',
  },
  MDP_ERR_NODE_KEY: {
    programs: PROXIES,
    doc: '[metadata_ssrf] token_key_file cannot be read or created, or does not hold a key of the right size.',
  },
  MDP_ERR_PATH_RULE: {
    programs: PROXIES,
    doc: '[metadata_ssrf] path_allow or path_deny holds a rule that is not a path or glob; reported as NMP_ERR_CONFIG.',
  },
  MDP_AGENT_TIMEOUT: {
    programs: PROXIES,
    doc: 'Internal: the agent was silent for the upstream timeout; the instance gets MDP_ERR_AGENT_TIMEOUT.',
  },
  MDP_AGENT_CONNECT_TIMEOUT: {
    programs: PROXIES,
    doc: 'Internal: connecting to the agent socket took longer than the connect timeout; the instance gets MDP_ERR_AGENT_UNREACHABLE.',
  },
  // The OVSDB client (packages/ovsdb)
  OVSDB_ERR_REMOTE: {
    programs: OVSDB_PROGRAMS,
    doc: 'A remote that is not tcp:HOST[:PORT], ssl:HOST[:PORT] or unix:PATH (ovn_sb_connection, ovsdb_connection).',
  },
  OVSDB_ERR_FRAMING: {
    programs: OVSDB_PROGRAMS,
    doc: 'The server sent bytes that are not a stream of JSON objects, or nested too deep; the connection is dropped.',
  },
  OVSDB_ERR_MESSAGE_TOO_LARGE: {
    programs: OVSDB_PROGRAMS,
    doc: 'The server sent a message larger than the client accepts; the connection is dropped.',
  },
  OVSDB_ERR_PROTOCOL: {
    programs: OVSDB_PROGRAMS,
    doc: 'The server answered something JSON-RPC or RFC 7047 does not allow (or cancelled a monitor); the connection is dropped.',
  },
  OVSDB_ERR_RPC: {
    programs: OVSDB_PROGRAMS,
    doc: 'The server answered a request with an error (the message has it).',
  },
  OVSDB_ERR_TIMEOUT: {
    programs: OVSDB_PROGRAMS,
    doc: 'The server did not answer a request (or the connection did not open) in time.',
  },
  OVSDB_ERR_DISCONNECTED: {
    programs: OVSDB_PROGRAMS,
    doc: 'The connection closed while a request was waiting for its answer.',
  },
  OVSDB_ERR_NOT_CONNECTED: {
    programs: OVSDB_PROGRAMS,
    doc: 'A request while no server is connected (the client is reconnecting).',
  },
  OVSDB_ERR_TRANSACTION: {
    programs: OVSDB_PROGRAMS,
    doc: 'A transaction whose operations failed (e.g. the Chassis_Private row is gone); the message has the first error.',
  },
  OVSDB_ERR_SCHEMA: {
    programs: OVSDB_PROGRAMS,
    doc: 'The server lacks the database, or a table or column the client needs (or a condition names one).',
  },
  OVSDB_ERR_DATA: {
    programs: OVSDB_PROGRAMS,
    doc: 'A value that does not fit the column type.',
  },
  OVSDB_ERR_TLS_FILES: {
    programs: OVSDB_PROGRAMS,
    doc: 'An ssl: remote and a TLS file ([ovn] ovn_sb_private_key, ovn_sb_certificate, ovn_sb_ca_cert) missing or unreadable; the file is named, never quoted.',
  },
  OVSDB_ERR_CLOSED: {
    programs: OVSDB_PROGRAMS,
    doc: 'A request after the client was closed (the program is stopping).',
  },
  // nmp-release and the development Nova
  NMP_RELEASE: {
    programs: ['nmp-release'],
    doc: 'The release build failed (the message says at which step).',
  },
  NMP_RELEASE_BUNDLE: {
    programs: ['nmp-release'],
    doc: "A program's bundle could not be made (esbuild, or a module it cannot bundle).",
  },
  NMP_RELEASE_TARBALL: {
    programs: ['nmp-release'],
    doc: 'tar failed while writing the release tarball.',
  },
  NMP_RELEASE_DEBIAN: {
    programs: ['nmp-release'],
    doc: 'The Debian package could not be made (a version dpkg refuses, dpkg-deb failed, a licence not found).',
  },
  NMP_RELEASE_RUNTIME: {
    programs: ['nmp-release'],
    doc: 'The node runtime to ship is older than the project supports or cannot be read.',
  },
  NMP_ERR_INSTANCES_FILE: {
    programs: ['nova-metadata-dev'],
    doc: "The development Nova's instances file is not valid (the message names the field).",
  },
} as const satisfies Record<string, ProgramErrorSpec>;

export type ProgramErrorCode = keyof typeof PROGRAM_ERRORS;

/** A failure with a stable code. `details` go to the log line; only the formatted message goes to the client. */
export class MetadataError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly level: LogLevel;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(formatMessage(spec.message, details), options);
    this.name = 'MetadataError';
    this.code = code;
    this.status = spec.status;
    this.level = spec.level;
    this.details = details;
  }
}

function formatMessage(template: string, details: Record<string, unknown>): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => String(details[key] ?? ''));
}

export const TEXT_PLAIN = 'text/plain; charset=UTF-8';

/** The plain-text body sent for an error: the message and a newline. */
export function errorBody(err: MetadataError): string {
  return `${err.message}\n`;
}
