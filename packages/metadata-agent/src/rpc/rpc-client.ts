/*
 * oslo.messaging RPC calls and casts over the agent's one broker connection (reference.md §14). Every call
 * publishes to the control exchange with routing key = topic, AMQP expiration = the time left before its
 * deadline (as oslo sets it to the call timeout), `mandatory` so that a topic nobody consumes fails at once
 * instead of at the deadline, and waits on the shared reply queue; replies are matched by `_msg_id`, so any
 * number of lookups share the connection and the queue. A call ends at its deadline whatever the broker
 * does (MDA_ERR_RPC_TIMEOUT, or MDA_ERR_RPC_UNAVAILABLE when there was no connection to publish on): an
 * instance never waits for neutron_lib's back-off.
 *
 * Casts (state reports) are published with publisher confirms: the promise settles when the broker took
 * the message (or refused it), so a report lost to an outage is known and counted.
 */
import { performance } from 'node:perf_hooks';
import { LogEvent, type Logger, MetadataError } from '@nmp/common';
import type { ConsumeMessage, Message } from 'amqplib';
import type { BrokerConnection } from './broker-connection.js';
import {
  buildMessage,
  CONTENT_ENCODING,
  CONTENT_TYPE,
  decodeEnvelope,
  decodeReply,
  encodeEnvelope,
  hexId,
  type RemoteFailure,
  type RpcRequest,
} from './envelope.js';

export type CallOutcome = 'answered' | 'remote_error' | 'timeout' | 'unavailable';

/** Told about every finished call (metrics). */
export interface RpcObserver {
  rpcCall(method: string, outcome: CallOutcome, seconds: number): void;
  /** A get_ports call of a lookup went out carrying `size` addresses (`lane` 'address') or routers ('router'). */
  lookupBatch?(lane: string, size: number): void;
}

export interface RpcClientSettings {
  readonly exchange: string;
  readonly replyQueue: string;
  readonly context: () => Readonly<Record<string, unknown>>;
  readonly observer?: RpcObserver;
}

interface Pending {
  readonly method: string;
  readonly topic: string;
  readonly started: number;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly timer: NodeJS.Timeout;
  /** The last non-null result seen (old servers send it before the `ending` message). */
  result: unknown;
}

export interface RpcClientStats {
  readonly outstanding: number;
  readonly calls: number;
  readonly casts: number;
  readonly lateReplies: number;
}

export class RpcClient {
  readonly #conn: BrokerConnection;
  readonly #s: RpcClientSettings;
  readonly #log: Logger;
  readonly #pending = new Map<string, Pending>();
  #calls = 0;
  #casts = 0;
  #lateReplies = 0;

  constructor(conn: BrokerConnection, settings: RpcClientSettings, log: Logger) {
    this.#conn = conn;
    this.#s = settings;
    this.#log = log;
    conn.on('message', (m: ConsumeMessage) => this.#onReply(m));
    conn.on('return', (m: Message) => this.#onReturn(m));
  }

  get stats(): RpcClientStats {
    return {
      outstanding: this.#pending.size,
      calls: this.#calls,
      casts: this.#casts,
      lateReplies: this.#lateReplies,
    };
  }

  /** Call `request.method` on `topic`; settles by `deadline` (epoch ms) at the latest. */
  call(topic: string, request: RpcRequest, deadline: number): Promise<unknown> {
    this.#calls++;
    const msgId = hexId();
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#expire(msgId), Math.max(0, deadline - Date.now()));
      this.#pending.set(msgId, {
        method: request.method,
        topic,
        started,
        resolve,
        reject,
        timer,
        result: null,
      });
      const channel = this.#conn.current;
      if (channel) this.#publishCall(channel, msgId, topic, request, deadline);
      else
        this.#conn.channel(deadline).then(
          (ch) => {
            if (this.#pending.has(msgId)) this.#publishCall(ch, msgId, topic, request, deadline);
          },
          () => this.#fail(msgId, 'unavailable', { reason: 'no connection to RabbitMQ' }),
        );
    });
  }

  /** Cast (no reply). Resolves once the broker confirmed the message; rejects when not connected. */
  cast(topic: string, request: RpcRequest): Promise<void> {
    this.#casts++;
    const channel = this.#conn.currentConfirm;
    if (!channel) return Promise.reject(new Error('no connection to RabbitMQ'));
    const body = encodeEnvelope(buildMessage(request, this.#s.context()));
    return new Promise((resolve, reject) => {
      try {
        channel.publish(
          this.#s.exchange,
          topic,
          body,
          {
            contentType: CONTENT_TYPE,
            contentEncoding: CONTENT_ENCODING,
            deliveryMode: 2,
            priority: 0,
            headers: {},
          },
          (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()),
        );
      } catch (err) {
        reject(err);
      }
    });
  }

  /**
   * The error a call of `method` on `topic` gets when its deadline passes now, `ms` after it began (what a
   * call's own deadline gives): MDA_ERR_RPC_TIMEOUT while connected, else MDA_ERR_RPC_UNAVAILABLE.
   */
  deadlineError(method: string, topic: string, ms: number): MetadataError {
    const connected = this.#conn.connected;
    return new MetadataError(connected ? 'MDA_ERR_RPC_TIMEOUT' : 'MDA_ERR_RPC_UNAVAILABLE', {
      upstream: 'neutron-rpc',
      method,
      topic,
      ms: Math.round(ms),
      reason: connected
        ? `no reply from neutron-server to ${method} on ${topic} in time`
        : 'no connection to RabbitMQ',
    });
  }

  /** Fail every outstanding call (shutdown). */
  abortAll(reason: string): void {
    for (const id of [...this.#pending.keys()]) this.#fail(id, 'unavailable', { reason });
  }

  #publishCall(
    channel: import('amqplib').Channel,
    msgId: string,
    topic: string,
    request: RpcRequest,
    deadline: number,
  ): void {
    const left = Math.max(1, deadline - Date.now());
    const body = encodeEnvelope(
      buildMessage(request, this.#s.context(), { msgId, replyQueue: this.#s.replyQueue }),
    );
    try {
      channel.publish(this.#s.exchange, topic, body, {
        contentType: CONTENT_TYPE,
        contentEncoding: CONTENT_ENCODING,
        deliveryMode: 2,
        priority: 0,
        headers: {},
        // The broker drops the request once nobody can use the answer any more (oslo: the call timeout).
        expiration: String(Math.ceil(left)),
        mandatory: true,
      });
    } catch (err) {
      this.#fail(msgId, 'unavailable', { reason: `publish failed: ${(err as Error).message}` });
    }
  }

  #onReply(m: ConsumeMessage): void {
    let reply: ReturnType<typeof decodeReply>;
    try {
      reply = decodeReply(decodeEnvelope(m.content));
    } catch (err) {
      this.#log.warn(
        { code: LogEvent.MDA_RPC_BAD_REPLY, error: (err as Error).message, bytes: m.content.length },
        'a message on the reply queue is not an oslo.messaging reply; dropped',
      );
      return;
    }
    const p = this.#pending.get(reply.msgId);
    if (!p) {
      // The call ended already (deadline), or a duplicate.
      this.#lateReplies++;
      this.#log.debug(
        { code: LogEvent.MDA_RPC_LATE_REPLY, msgId: reply.msgId },
        'reply for a call that has ended',
      );
      return;
    }
    if (reply.failure) {
      this.#fail(reply.msgId, 'remote_error', { failure: reply.failure });
      return;
    }
    if (reply.result !== null && reply.result !== undefined) p.result = reply.result;
    if (!reply.ending) return; // first half of an old-style reply, or a call-monitor heartbeat
    this.#pending.delete(reply.msgId);
    clearTimeout(p.timer);
    this.#s.observer?.rpcCall(p.method, 'answered', (performance.now() - p.started) / 1000);
    p.resolve(p.result);
  }

  #onReturn(m: Message): void {
    let msgId: unknown;
    try {
      msgId = decodeEnvelope(m.content)._msg_id;
    } catch {
      return;
    }
    if (typeof msgId !== 'string' || !this.#pending.has(msgId)) return;
    const p = this.#pending.get(msgId)!;
    this.#fail(msgId, 'unavailable', {
      reason: `no queue is bound to ${p.topic} on exchange ${this.#s.exchange}: no neutron-server consumes it (is neutron-server running, with the same control_exchange and vhost?)`,
      replyCode: (m.fields as { replyCode?: number }).replyCode,
    });
  }

  #expire(msgId: string): void {
    const p = this.#pending.get(msgId);
    if (!p) return;
    this.#fail(msgId, this.#conn.connected ? 'timeout' : 'unavailable', {
      reason: this.#conn.connected
        ? `no reply from neutron-server to ${p.method} on ${p.topic} in time`
        : 'no connection to RabbitMQ',
    });
  }

  #fail(msgId: string, outcome: Exclude<CallOutcome, 'answered'>, details: Record<string, unknown>): void {
    const p = this.#pending.get(msgId);
    if (!p) return;
    this.#pending.delete(msgId);
    clearTimeout(p.timer);
    const seconds = (performance.now() - p.started) / 1000;
    this.#s.observer?.rpcCall(p.method, outcome, seconds);
    const code =
      outcome === 'timeout'
        ? 'MDA_ERR_RPC_TIMEOUT'
        : outcome === 'remote_error'
          ? 'MDA_ERR_RPC_REMOTE_ERROR'
          : 'MDA_ERR_RPC_UNAVAILABLE';
    const failure = details.failure as RemoteFailure | undefined;
    p.reject(
      new MetadataError(code, {
        upstream: 'neutron-rpc',
        method: p.method,
        topic: p.topic,
        ms: Math.round(seconds * 1000),
        ...(failure
          ? { remoteClass: failure.className, remoteModule: failure.module, remoteMessage: failure.message }
          : details),
      }),
    );
  }
}
