/*
 * The control protocol: one JSON object per line over a root-only UNIX socket, one answer line per
 * request, in order. What the hooks (or an operator) send:
 *
 *   {"op":"attach","id":"<network or router id>","mode":"network"|"router"|"ovn","namespace":"qdhcp-...","binds":["169.254.169.254:80"]}
 *   {"op":"detach","namespace":"qdhcp-..."}       or {"op":"detach","id":"...","mode":"network"}
 *   {"op":"list"}
 *
 * Answers are {"ok":true,...} or {"ok":false,"error":"..."}. A namespace holds at most one attachment
 * (as it held one proxy), so the namespace names it; the id is what its listeners stamp.
 */
import { connect } from 'node:net';
import {
  IDENTITY_MODES,
  type IdentityMode,
  NEUTRON_ID_PATTERN,
  type ProgramErrorCode,
  parseBind,
} from '@nmp/common';

export interface AttachSpec {
  /** Network or router id stamped on every request accepted by this attachment's listeners. */
  readonly id: string;
  /** Which identity header the attachment's listeners stamp: ovn for ovnmeta-<network> namespaces. */
  readonly mode: IdentityMode;
  /** Name under /run/netns. */
  readonly namespace: string;
  /** Bind specifications as the proxy's --bind takes them. */
  readonly binds: readonly string[];
}

/**
 * listening: every bind is served. attaching: a helper is running. namespace-missing: the namespace
 * vanished (or was replaced); its listeners were dropped and it is attached again if it comes back.
 * failed: the helper could not bind (retried at each check while persisted).
 */
export type AttachmentState = 'attaching' | 'listening' | 'namespace-missing' | 'failed';

export interface AttachmentStatus extends AttachSpec {
  readonly state: AttachmentState;
  /** Sockets the serving process has open for it, as `address:port` / `[v6]:port`. */
  readonly listening: readonly string[];
  readonly namespaceExists: boolean;
  readonly healthy: boolean;
  readonly error?: string;
  /** When the attachment entered its state (ISO 8601). */
  readonly since: string;
  readonly connections?: number;
}

export interface DaemonHealth {
  readonly pid: number;
  readonly workerPid: number | undefined;
  readonly agentSocket: string;
  readonly agentReachable: boolean;
  readonly attachments: number;
  readonly healthy: number;
}

export type ControlRequest =
  | ({ readonly op: 'attach' } & AttachSpec)
  | { readonly op: 'detach'; readonly namespace?: string; readonly id?: string; readonly mode?: IdentityMode }
  | { readonly op: 'list' };

export type ControlResponse =
  | { readonly ok: true; readonly attachment?: AttachmentStatus; readonly detached?: AttachSpec }
  | {
      readonly ok: true;
      readonly daemon: DaemonHealth;
      readonly attachments: readonly AttachmentStatus[];
    }
  | { readonly ok: false; readonly error: string };

export class ProtocolError extends Error {
  readonly code = 'MDP_ERR_DAEMON_PROTOCOL' satisfies ProgramErrorCode;
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const NAMESPACE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

function str(o: Record<string, unknown>, key: string, re: RegExp): string {
  const v = o[key];
  if (typeof v !== 'string' || !re.test(v)) throw new ProtocolError(`invalid or missing '${key}'`);
  return v;
}

function mode(v: unknown): IdentityMode {
  if (!IDENTITY_MODES.includes(v as IdentityMode))
    throw new ProtocolError("'mode' must be 'network', 'router' or 'ovn'");
  return v as IdentityMode;
}

/** Check an attach specification (also used for the persisted file). */
export function checkAttachSpec(o: Record<string, unknown>): AttachSpec {
  const binds = o.binds;
  if (!Array.isArray(binds) || binds.length === 0 || binds.length > 16)
    throw new ProtocolError("'binds' must be a list of 1-16 ADDRESS:PORT strings");
  for (const b of binds) {
    if (typeof b !== 'string') throw new ProtocolError("'binds' must be strings");
    try {
      parseBind(b);
    } catch (err) {
      throw new ProtocolError((err as Error).message);
    }
  }
  return {
    id: str(o, 'id', NEUTRON_ID_PATTERN),
    mode: mode(o.mode),
    namespace: str(o, 'namespace', NAMESPACE_RE),
    binds: binds as string[],
  };
}

/** Parse and validate one request line. */
export function parseRequest(line: string): ControlRequest {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new ProtocolError('request is not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new ProtocolError('request is not an object');
  const r = o as Record<string, unknown>;
  switch (r.op) {
    case 'attach':
      return { op: 'attach', ...checkAttachSpec(r) };
    case 'detach': {
      if (r.namespace !== undefined) return { op: 'detach', namespace: str(r, 'namespace', NAMESPACE_RE) };
      if (r.id !== undefined)
        return {
          op: 'detach',
          id: str(r, 'id', NEUTRON_ID_PATTERN),
          ...(r.mode !== undefined ? { mode: mode(r.mode) } : {}),
        };
      throw new ProtocolError("detach needs 'namespace' or 'id'");
    }
    case 'list':
      return { op: 'list' };
    default:
      throw new ProtocolError(`unknown op ${JSON.stringify(r.op)}`);
  }
}

export class DaemonUnreachableError extends Error {
  readonly code = 'MDP_ERR_DAEMON_UNREACHABLE' satisfies ProgramErrorCode;
  constructor(
    readonly socketPath: string,
    /** How the connection failed: ENOENT, ECONNREFUSED, EACCES, ETIMEDOUT. */
    readonly errno: string,
  ) {
    super(`metadata proxy daemon not reachable on ${socketPath} (${errno})`);
    this.name = 'DaemonUnreachableError';
  }
}

/** The daemon said no. */
export class DaemonRequestError extends Error {
  readonly code = 'MDP_ERR_DAEMON_REFUSED' satisfies ProgramErrorCode;
  constructor(message: string) {
    super(message);
    this.name = 'DaemonRequestError';
  }
}

/**
 * Send one request and read its answer. Rejects with DaemonUnreachableError when nobody listens,
 * DaemonRequestError when the daemon refuses. `timeoutMs` covers connect and answer (an attach waits
 * for the helper: give it longer than listener_helper_timeout).
 */
export function daemonRequest(
  socketPath: string,
  request: ControlRequest,
  timeoutMs = 30_000,
): Promise<ControlResponse & { ok: true }> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    let connected = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        connected
          ? new DaemonRequestError(`no answer from the daemon within ${timeoutMs} ms`)
          : new DaemonUnreachableError(socketPath, 'ETIMEDOUT'),
      );
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => {
      connected = true;
      sock.write(`${JSON.stringify(request)}\n`);
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl === -1) return;
      clearTimeout(timer);
      sock.end();
      let answer: ControlResponse;
      try {
        answer = JSON.parse(buf.slice(0, nl)) as ControlResponse;
      } catch {
        reject(new DaemonRequestError('the daemon sent something that is not JSON'));
        return;
      }
      if (answer.ok) resolve(answer);
      else reject(new DaemonRequestError(answer.error));
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        connected
          ? new DaemonRequestError(`connection to the daemon failed: ${err.code ?? err.message}`)
          : new DaemonUnreachableError(socketPath, err.code ?? err.message),
      );
    });
    sock.once('close', () => {
      clearTimeout(timer);
      if (connected) reject(new DaemonRequestError('the daemon closed the connection without answering'));
    });
  });
}

/** Typed helpers over daemonRequest. */
export const daemonClient = {
  attach: async (socketPath: string, spec: AttachSpec, timeoutMs?: number): Promise<AttachmentStatus> => {
    const r = await daemonRequest(socketPath, { op: 'attach', ...spec }, timeoutMs);
    return (r as { attachment: AttachmentStatus }).attachment;
  },
  detach: async (
    socketPath: string,
    target: { namespace: string } | { id: string; mode?: IdentityMode },
    timeoutMs?: number,
  ): Promise<AttachSpec | undefined> => {
    const r = await daemonRequest(socketPath, { op: 'detach', ...target }, timeoutMs);
    return (r as { detached?: AttachSpec }).detached;
  },
  list: async (
    socketPath: string,
    timeoutMs?: number,
  ): Promise<{ daemon: DaemonHealth; attachments: readonly AttachmentStatus[] }> => {
    const r = await daemonRequest(socketPath, { op: 'list' }, timeoutMs);
    return r as { daemon: DaemonHealth; attachments: readonly AttachmentStatus[] };
  },
};

/** Human-readable `status` output. */
export function formatDaemonStatus(daemon: DaemonHealth, attachments: readonly AttachmentStatus[]): string {
  const head =
    `daemon pid ${daemon.pid}, worker pid ${daemon.workerPid ?? '-'}; agent ${daemon.agentSocket} ` +
    `${daemon.agentReachable ? 'reachable' : 'UNREACHABLE'}; ${daemon.healthy}/${daemon.attachments} healthy`;
  const lines = attachments.map(
    (a) =>
      `${a.namespace}: ${a.mode} ${a.id} ${a.healthy ? 'healthy' : `UNHEALTHY (${a.state}${a.error ? `: ${a.error}` : ''})`}; ` +
      `listening ${a.listening.join(' ') || '-'}`,
  );
  return `${[head, ...lines].join('\n')}\n`;
}
