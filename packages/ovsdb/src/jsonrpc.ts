/*
 * One JSON-RPC 1.0 session over a stream, as RFC 7047 §4 uses it: requests carry an id and get exactly one
 * response; notifications have a null id; both peers may send requests.
 *
 * Keep-alive, as OVS's reconnect state machine does it: the server's "echo" requests are answered at once;
 * when nothing has arrived for `probeIntervalMs` we send our own "echo", and when nothing arrives for another
 * interval the session is declared dead and closed. Any received message counts as a sign of life.
 *
 * What the peer sends is not trusted: a framing error closes the session; a message that is JSON but not
 * JSON-RPC is counted and dropped; a response to an id we never used is dropped. Nothing here throws into
 * the event loop, and a closed session rejects every pending request with OVSDB_ERR_DISCONNECTED.
 */
import type { Socket } from 'node:net';
import { FramingError, OvsdbError, RpcError } from './errors.js';
import { JsonObjectFramer } from './json-stream.js';

export interface SessionOptions {
  readonly maxMessageBytes: number;
  /** 0: no probes of ours (the server's echoes are still answered). */
  readonly probeIntervalMs: number;
  /** A notification (method with a null id) arrived. */
  readonly onNotification: (method: string, params: unknown) => void;
  /** The session ended (by either side, or a failure); called once. */
  readonly onClose: (reason: OvsdbError) => void;
  /** A message that was dropped as malformed (for the caller's log and counters). */
  readonly onDropped?: (why: string) => void;
}

interface Pending {
  readonly method: string;
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export class JsonRpcSession {
  readonly #socket: Socket;
  readonly #o: SessionOptions;
  readonly #framer: JsonObjectFramer;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  #lastReceived = Date.now();
  /** When our echo went out (0: none outstanding). */
  #probeSentAt = 0;
  #probeTimer: NodeJS.Timeout | undefined;
  /** Messages received and dropped (for tests and stats). */
  received = 0;
  dropped = 0;

  constructor(socket: Socket, options: SessionOptions) {
    this.#socket = socket;
    this.#o = options;
    this.#framer = new JsonObjectFramer({ maxMessageBytes: options.maxMessageBytes });
    socket.on('data', this.#onData);
    socket.on('error', (err) =>
      this.close(new OvsdbError('OVSDB_ERR_DISCONNECTED', `connection failed: ${describe(err)}`)),
    );
    socket.on('close', () => this.close(new OvsdbError('OVSDB_ERR_DISCONNECTED', 'connection closed')));
    socket.on('end', () => socket.end());
    if (options.probeIntervalMs > 0) {
      // Checked at a fraction of the interval, so a dead peer is noticed within about two intervals.
      const tick = Math.max(100, Math.floor(options.probeIntervalMs / 4));
      this.#probeTimer = setInterval(this.#checkAlive, tick);
      this.#probeTimer.unref();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Send a request; resolves with its result, rejects with RpcError (the server's error) or OvsdbError. */
  request(method: string, params: unknown, timeoutMs?: number): Promise<unknown> {
    if (this.#closed)
      return Promise.reject(new OvsdbError('OVSDB_ERR_DISCONNECTED', `${method}: session closed`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const pending: Pending = { method, resolve, reject, timer: undefined };
      if (timeoutMs !== undefined && timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(new OvsdbError('OVSDB_ERR_TIMEOUT', `${method}: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#pending.set(id, pending);
      this.#send({ method, params, id });
    });
  }

  /** Send a notification (no answer). */
  notify(method: string, params: unknown): void {
    if (!this.#closed) this.#send({ method, params, id: null });
  }

  close(reason: OvsdbError = new OvsdbError('OVSDB_ERR_CLOSED', 'session closed by the client')): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    this.#socket.off('data', this.#onData);
    this.#socket.destroy();
    for (const [, p] of this.#pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(new OvsdbError('OVSDB_ERR_DISCONNECTED', `${p.method}: ${reason.message}`));
    }
    this.#pending.clear();
    this.#o.onClose(reason);
  }

  #send(message: object): void {
    // The socket may be half-dead; a failed write surfaces as 'error'/'close' and closes the session.
    this.#socket.write(JSON.stringify(message));
  }

  readonly #onData = (chunk: Buffer): void => {
    let messages: unknown[];
    try {
      messages = this.#framer.push(chunk);
    } catch (err) {
      const e =
        err instanceof FramingError ? err : new OvsdbError('OVSDB_ERR_FRAMING', `framing: ${describe(err)}`);
      this.close(e);
      return;
    }
    if (messages.length === 0) return;
    this.#lastReceived = Date.now();
    this.#probeSentAt = 0;
    for (const m of messages) {
      if (this.#closed) return;
      this.received++;
      try {
        this.#dispatch(m);
      } catch (err) {
        // A bug in a handler must not take the session (or the process) down with it.
        this.#drop(`handler failed: ${describe(err)}`);
      }
    }
  };

  #dispatch(m: unknown): void {
    const msg = m as { method?: unknown; params?: unknown; id?: unknown; result?: unknown; error?: unknown };
    if (typeof msg.method === 'string') {
      if (msg.id === null || msg.id === undefined) {
        this.#o.onNotification(msg.method, msg.params);
        return;
      }
      // A request from the server: "echo" is the only one RFC 7047 has a client answer.
      if (msg.method === 'echo') this.#send({ result: msg.params ?? [], error: null, id: msg.id });
      else this.#send({ result: null, error: { error: 'unknown method', details: msg.method }, id: msg.id });
      return;
    }
    if (typeof msg.id !== 'number' || !('result' in msg || 'error' in msg)) {
      this.#drop('not a JSON-RPC request, notification or response');
      return;
    }
    const pending = this.#pending.get(msg.id);
    if (pending === undefined) {
      this.#drop(`response to unknown id ${msg.id}`);
      return;
    }
    this.#pending.delete(msg.id);
    if (pending.timer) clearTimeout(pending.timer);
    if (msg.error !== null && msg.error !== undefined)
      pending.reject(new RpcError(pending.method, msg.error));
    else pending.resolve(msg.result);
  }

  #drop(why: string): void {
    this.dropped++;
    this.#o.onDropped?.(why);
  }

  readonly #checkAlive = (): void => {
    const interval = this.#o.probeIntervalMs;
    const now = Date.now();
    if (this.#probeSentAt !== 0) {
      if (now - this.#probeSentAt >= interval)
        this.close(
          new OvsdbError(
            'OVSDB_ERR_TIMEOUT',
            `no message for ${now - this.#lastReceived} ms (echo unanswered)`,
          ),
        );
      return;
    }
    if (now - this.#lastReceived >= interval) {
      this.#probeSentAt = now;
      // Any message proves life, so the echo's own answer is not awaited here (only failures matter).
      this.request('echo', []).catch(() => {});
    }
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}
