/*
 * oslo.messaging's message format on the rabbit driver (reference.md §14), both directions:
 *
 * - Requests: the AMQP body is the JSON envelope {"oslo.version": "2.0", "oslo.message": "<JSON text>"};
 *   the inner message holds `method`, `args` (keyword arguments by name), `version`, `namespace` (only
 *   when set), `_unique_id`, the request context flattened to `_context_<key>`, and for calls `_msg_id`,
 *   `_reply_q` and `_timeout` (null: no call-monitor heartbeats).
 * - Replies: the same envelope around {result, failure, ending, _msg_id, _unique_id}; `failure` is itself
 *   JSON text {class, module, message, tb, args, kwargs}. Releases before 2015 sent the result and then a
 *   separate {"ending": true}; call monitoring sends {ending: false} heartbeats. decodeReply() says which.
 *
 * The context is neutron's admin context without a session (neutron_lib get_admin_context_without_session
 * to_dict()): the keys Zed sends, plus `has_global_access` and the roles newer releases add. A fresh
 * request id and timestamp per call make each lookup traceable in neutron-server's log.
 */
import { randomUUID } from 'node:crypto';

export const ENVELOPE_VERSION = '2.0';

/** The AMQP properties oslo (kombu) publishes with: JSON text in UTF-8. */
export const CONTENT_TYPE = 'application/json';
export const CONTENT_ENCODING = 'utf-8';

export interface RpcRequest {
  readonly method: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly version: string;
  /** Omitted from the message when undefined (neutron's metadata and state namespaces are None). */
  readonly namespace?: string;
}

export interface CallFields {
  readonly msgId: string;
  readonly replyQueue: string;
}

/** uuid4 as 32 hex digits, as oslo's uuid.uuid4().hex. */
export function hexId(): string {
  return randomUUID().replaceAll('-', '');
}

/** Python's str(datetime): 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here, as utcnow()). */
export function pythonTimestamp(d: Date): string {
  const iso = d.toISOString(); // 2026-12-02T13:33:15.432Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}000`;
}

/** neutron's admin context as to_dict() gives it, with a new request id and timestamp. */
export function adminContext(now: Date = new Date()): Record<string, unknown> {
  return {
    user: null,
    project_id: null,
    system_scope: null,
    project: null,
    domain: null,
    user_domain: null,
    project_domain: null,
    is_admin: true,
    read_only: false,
    show_deleted: false,
    auth_token: null,
    request_id: `req-${randomUUID()}`,
    global_request_id: null,
    resource_uuid: null,
    roles: ['admin', 'member', 'reader'],
    user_identity: '- - - - -',
    is_admin_project: true,
    user_id: null,
    tenant_id: null,
    timestamp: pythonTimestamp(now),
    tenant_name: null,
    project_name: null,
    user_name: null,
    has_global_access: true,
  };
}

/** The inner message of a call (with `call`) or a cast (without). */
export function buildMessage(
  request: RpcRequest,
  context: Readonly<Record<string, unknown>>,
  call?: CallFields,
): Record<string, unknown> {
  const msg: Record<string, unknown> = {
    method: request.method,
    args: request.args,
    version: request.version,
  };
  if (request.namespace !== undefined) msg.namespace = request.namespace;
  if (call) {
    msg._msg_id = call.msgId;
    msg._reply_q = call.replyQueue;
    msg._timeout = null;
  }
  msg._unique_id = hexId();
  for (const [k, v] of Object.entries(context)) msg[`_context_${k}`] = v;
  return msg;
}

/** The AMQP body: the 2.0 envelope around the message's JSON text. */
export function encodeEnvelope(message: Readonly<Record<string, unknown>>): Buffer {
  return Buffer.from(
    JSON.stringify({ 'oslo.version': ENVELOPE_VERSION, 'oslo.message': JSON.stringify(message) }),
    'utf8',
  );
}

/** The message inside an AMQP body (the envelope unwrapped; a body without one is the message itself). */
export function decodeEnvelope(body: Buffer): Record<string, unknown> {
  const outer = JSON.parse(body.toString('utf8')) as unknown;
  if (outer === null || typeof outer !== 'object' || Array.isArray(outer))
    throw new Error('the message is not a JSON object');
  const o = outer as Record<string, unknown>;
  if (!('oslo.version' in o)) return o; // oslo accepts un-enveloped messages too
  if (typeof o['oslo.version'] !== 'string' || !o['oslo.version'].startsWith('2.'))
    throw new Error(`unsupported envelope version ${String(o['oslo.version'])}`);
  if (typeof o['oslo.message'] !== 'string') throw new Error('the envelope has no oslo.message text');
  const inner = JSON.parse(o['oslo.message']) as unknown;
  if (inner === null || typeof inner !== 'object' || Array.isArray(inner))
    throw new Error('oslo.message is not a JSON object');
  return inner as Record<string, unknown>;
}

/** The server's exception, as much as the log needs (never the traceback's locals; it has none). */
export interface RemoteFailure {
  readonly className: string;
  readonly module: string;
  readonly message: string;
}

/**
 * One reply message. oslo's client keeps the last non-null `result` and returns it when a message with
 * `ending: true` arrives: a current server sends one message {result, ending: true}; a release before 2015
 * sent {result, ending: false} then {result: null, ending: true}; call monitoring sends {result: null,
 * ending: false} keep-alives. A `failure` ends the call at once.
 */
export interface DecodedReply {
  readonly msgId: string;
  /** null/undefined when the message carries none. */
  readonly result: unknown;
  readonly ending: boolean;
  readonly failure?: RemoteFailure;
}

/** Read one reply message (already unwrapped). Throws when it is not a reply. */
export function decodeReply(m: Readonly<Record<string, unknown>>): DecodedReply {
  const msgId = m._msg_id;
  if (typeof msgId !== 'string' || msgId === '') throw new Error('the reply has no _msg_id');
  const ending = m.ending === true;
  if (m.failure !== undefined && m.failure !== null && m.failure !== '')
    return { msgId, result: null, ending: true, failure: parseFailure(m.failure) };
  return { msgId, result: m.result ?? null, ending };
}

function parseFailure(raw: unknown): RemoteFailure {
  let f: unknown = raw;
  if (typeof raw === 'string') {
    try {
      f = JSON.parse(raw);
    } catch {
      return { className: 'unknown', module: '', message: raw.slice(0, 500) };
    }
  }
  const o = (f ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  return {
    className: str(o.class) || 'unknown',
    module: str(o.module),
    message: str(o.message).slice(0, 500),
  };
}
