/*
 * The agent's one connection to RabbitMQ (amqplib), kept up by itself:
 *
 * - Hosts of transport_url are tried in order (kombu's round-robin; shuffled once with
 *   kombu_failover_strategy = shuffle). After a lost connection the next host is tried at once; after a
 *   whole round failed the wait grows as oslo's: rabbit_retry_interval, + rabbit_retry_backoff per round,
 *   at most rabbit_interval_max.
 * - Heartbeats: a broker silent for about heartbeat_timeout_threshold seconds is given up and replaced
 *   (amqplib gives up after two silent heartbeat intervals, so the interval asked for is half of it).
 * - On every (re)connection two channels are set up, as neutron's client sets up its own: the
 *   control exchange declared as neutron-server declares it (topic; durable when amqp_durable_queues or
 *   rabbit_quorum_queue; auto-delete with amqp_auto_delete), the reply queue `reply_<uuid hex>` (same name
 *   for the life of the process, non-durable, x-expires), bound as well to a direct exchange of its own
 *   name (how releases before 2019 published replies), and consumed. Calls go on that channel; casts go on a
 *   second one in confirm mode, so that a cast knows the broker took it (calls have their reply for that,
 *   and a confirm per call would cost the broker and the agent a frame each).
 * - A control exchange that exists with other settings (PRECONDITION_FAILED) is used as it is, with one
 *   warning saying which option to align, instead of a channel error on every reconnection.
 *
 * Failures are logged once per outage and host/reason (not once per attempt), never with the password:
 * amqplib's messages do not carry it, and any that did would be scrubbed here.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { ConnectionOptions } from 'node:tls';
import { LogEvent, type Logger } from '@nmp/common';
import type * as amqpTypes from 'amqplib';
import { hostLabel, type RabbitHost } from './transport-url.js';

// A CommonJS package loaded with require, not import (as undici and pino are): see nova-client.ts.
const amqp = createRequire(import.meta.url)('amqplib') as typeof amqpTypes;

export type LoginMethod = 'AMQPLAIN' | 'PLAIN' | 'EXTERNAL';

export interface BrokerSettings {
  readonly hosts: readonly RabbitHost[];
  readonly vhost: string;
  /** TLS options (CA, client certificate, versions, hostname check); undefined = plain TCP. */
  readonly tls?: ConnectionOptions;
  readonly loginMethod: LoginMethod;
  /** Seconds of broker silence after which the connection is replaced; 0 = no heartbeats. */
  readonly heartbeatTimeoutS: number;
  /** TCP + TLS + AMQP handshake, per host (ms). */
  readonly connectTimeoutMs: number;
  readonly retryIntervalMs: number;
  readonly retryBackoffMs: number;
  readonly retryMaxMs: number;
  readonly exchange: { readonly name: string; readonly durable: boolean; readonly autoDelete: boolean };
  readonly replyQueue: {
    readonly name: string;
    readonly expiresMs: number;
    readonly haPolicy: boolean;
  };
  /** Shown in RabbitMQ's connection list (connection_name), as oslo names its connections. */
  readonly connectionName: string;
  readonly product?: string;
  readonly version?: string;
}

export interface BrokerStats {
  readonly connected: boolean;
  /** Connections established after the first one. */
  readonly reconnects: number;
  /** Connection attempts (one host each) that failed. */
  readonly connectFailures: number;
  /** Connections that ended while in use. */
  readonly disconnects: number;
  /** host:port of the current connection ('' when none). */
  readonly host: string;
}

type State = 'idle' | 'connecting' | 'up' | 'waiting' | 'closed';

interface Waiter {
  readonly resolve: (ch: amqpTypes.Channel) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Events: 'up' (host label), 'down' (reason), 'message' (ConsumeMessage on the reply queue),
 * 'return' (a mandatory message the broker could not route).
 */
export class BrokerConnection extends EventEmitter {
  readonly #s: BrokerSettings;
  readonly #log: Logger;
  readonly #order: readonly RabbitHost[];
  #state: State = 'idle';
  #model: amqpTypes.ChannelModel | undefined;
  #channel: amqpTypes.Channel | undefined;
  #confirm: amqpTypes.ConfirmChannel | undefined;
  #next = 0;
  #round = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #waiters = new Set<Waiter>();
  #everConnected = false;
  #reconnects = 0;
  #connectFailures = 0;
  #disconnects = 0;
  #host = '';
  /** Failures already logged in this outage ("host reason"). */
  #logged = new Set<string>();
  #exchangeWarned = false;
  #secrets: readonly string[];
  /** Settles when the connection is (next) up; one for every waiter of an outage. */
  #up: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(settings: BrokerSettings, log: Logger, shuffle = false) {
    super();
    this.#s = settings;
    this.#log = log;
    const hosts = [...settings.hosts];
    if (shuffle) {
      for (let i = hosts.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [hosts[i], hosts[j]] = [hosts[j]!, hosts[i]!];
      }
    }
    this.#order = hosts;
    // Scrub only passwords long enough not to mangle ordinary words in a message.
    this.#secrets = settings.hosts.map((h) => h.password).filter((p) => p.length >= 4);
  }

  get stats(): BrokerStats {
    return {
      connected: this.#state === 'up',
      reconnects: this.#reconnects,
      connectFailures: this.#connectFailures,
      disconnects: this.#disconnects,
      host: this.#host,
    };
  }

  get connected(): boolean {
    return this.#state === 'up';
  }

  /**
   * Not connected, and known not to be: a connection was lost or an attempt failed, and none has
   * succeeded since (a reconnect may be under way). Not at start, before the first attempt ended.
   */
  get knownDown(): boolean {
    return (
      this.#state !== 'up' && this.#state !== 'closed' && (this.#everConnected || this.#connectFailures > 0)
    );
  }

  /** Resolves once connected (at once when connected now). */
  whenUp(): Promise<void> {
    if (this.#state === 'up') return Promise.resolve();
    if (this.#up === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#up = { promise, resolve };
    }
    return this.#up.promise;
  }

  /** Start connecting (in the background; failures are logged and retried). */
  start(): void {
    if (this.#state !== 'idle') return;
    void this.#connectRound();
  }

  /** The channel for calls, now or once connected; rejects at `deadline` (epoch ms). */
  channel(deadline: number): Promise<amqpTypes.Channel> {
    if (this.#state === 'up' && this.#channel) return Promise.resolve(this.#channel);
    if (this.#state === 'closed') return Promise.reject(new Error('the broker connection is closed'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(
          () => {
            this.#waiters.delete(waiter);
            reject(new Error('no connection to RabbitMQ'));
          },
          Math.max(0, deadline - Date.now()),
        ),
      };
      this.#waiters.add(waiter);
    });
  }

  /** Resolves once connected, or after `timeoutMs` (or at close) either way. */
  whenConnected(timeoutMs: number): Promise<void> {
    if (this.#state === 'up' || this.#state === 'closed') return Promise.resolve();
    return this.channel(Date.now() + timeoutMs).then(
      () => undefined,
      () => undefined,
    );
  }

  /** The channel for calls if connected now, else undefined. */
  get current(): amqpTypes.Channel | undefined {
    return this.#state === 'up' ? this.#channel : undefined;
  }

  /** The confirm-mode channel for casts if connected now, else undefined. */
  get currentConfirm(): amqpTypes.ConfirmChannel | undefined {
    return this.#state === 'up' ? this.#confirm : undefined;
  }

  async close(): Promise<void> {
    const model = this.#model;
    this.#state = 'closed';
    clearTimeout(this.#retryTimer);
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new Error('the broker connection is closed'));
    }
    this.#waiters.clear();
    this.#model = undefined;
    this.#channel = undefined;
    this.#confirm = undefined;
    if (model) await model.close().catch(() => {});
  }

  async #connectRound(): Promise<void> {
    for (let i = 0; i < this.#order.length; i++) {
      if (this.#state === 'closed') return;
      const host = this.#order[this.#next]!;
      this.#next = (this.#next + 1) % this.#order.length;
      this.#state = 'connecting';
      if (await this.#tryHost(host)) return;
    }
    if (this.#state === 'closed') return;
    const wait = retryDelayMs(this.#round, this.#s);
    this.#round++;
    this.#state = 'waiting';
    this.#log.debug({ code: LogEvent.MDA_RPC_RETRY, waitMs: wait }, 'no RabbitMQ host reachable; retrying');
    this.#retryTimer = setTimeout(() => void this.#connectRound(), wait);
    this.#retryTimer.unref();
  }

  /** One connection attempt; true when connected and set up. */
  async #tryHost(host: RabbitHost): Promise<boolean> {
    const label = hostLabel(host);
    let model: amqpTypes.ChannelModel | undefined;
    try {
      model = await amqp.connect(
        {
          protocol: this.#s.tls ? 'amqps' : 'amqp',
          hostname: host.hostname,
          port: host.port,
          vhost: this.#s.vhost,
          // amqplib gives up after two silent intervals: ask for half the threshold.
          heartbeat:
            this.#s.heartbeatTimeoutS > 0 ? Math.max(1, Math.ceil(this.#s.heartbeatTimeoutS / 2)) : 0,
          frameMax: 131072,
        },
        {
          // amqplib reads the SASL credentials from the socket options, not from the URL object.
          credentials: this.#credentials(host),
          timeout: this.#s.connectTimeoutMs,
          noDelay: true,
          keepAlive: true,
          keepAliveDelay: 10_000,
          ...(this.#s.tls ?? {}),
          ...(this.#s.tls && !this.#s.tls.servername && !isIpLiteral(host.hostname)
            ? { servername: host.hostname }
            : {}),
          clientProperties: {
            connection_name: this.#s.connectionName,
            product: this.#s.product ?? 'nmp metadata-agent',
            ...(this.#s.version ? { version: this.#s.version } : {}),
          },
        },
      );
      if (this.#state === 'closed') {
        await model.close().catch(() => {});
        return false;
      }
      const [channel, confirm] = await this.#setUp(model, label);
      this.#adopt(model, channel, confirm, label);
      return true;
    } catch (err) {
      this.#connectFailures++;
      if (model) await model.close().catch(() => {});
      this.#failed(label, err);
      return false;
    }
  }

  #credentials(host: RabbitHost) {
    switch (this.#s.loginMethod) {
      case 'EXTERNAL':
        return amqp.credentials.external();
      case 'PLAIN':
        return amqp.credentials.plain(host.username, host.password);
      default:
        return amqp.credentials.amqplain(host.username, host.password);
    }
  }

  async #setUp(
    model: amqpTypes.ChannelModel,
    label: string,
  ): Promise<[amqpTypes.Channel, amqpTypes.ConfirmChannel]> {
    // Errors on a channel are also emitted on it; without a listener node would throw them.
    model.on('error', () => {});
    let channel: amqpTypes.Channel = await model.createChannel();
    channel.on('error', () => {});
    const { exchange, replyQueue } = this.#s;
    try {
      await channel.assertExchange(exchange.name, 'topic', {
        durable: exchange.durable,
        autoDelete: exchange.autoDelete,
      });
    } catch (err) {
      if (!isPreconditionFailed(err)) throw err;
      // The exchange exists with other flags: a new channel (the failed declare closed this one), and
      // the exchange used as it is.
      channel = await model.createChannel();
      channel.on('error', () => {});
      await channel.checkExchange(exchange.name);
      if (!this.#exchangeWarned) {
        this.#exchangeWarned = true;
        this.#log.warn(
          {
            code: LogEvent.MDA_RPC_EXCHANGE_MISMATCH,
            exchange: exchange.name,
            host: label,
            declared: { durable: exchange.durable, autoDelete: exchange.autoDelete },
            error: this.#scrub(errorText(err)),
          },
          `exchange ${exchange.name} exists with other settings than ours; using it as it is. Set [oslo_messaging_rabbit] amqp_durable_queues, rabbit_quorum_queue and amqp_auto_delete as neutron-server has them`,
        );
      }
    }
    const args: Record<string, unknown> = { 'x-expires': replyQueue.expiresMs };
    if (replyQueue.haPolicy) args['x-ha-policy'] = 'all';
    await channel.assertQueue(replyQueue.name, {
      durable: false,
      autoDelete: false,
      exclusive: false,
      arguments: args,
    });
    // Releases before 2019 published replies to a direct exchange named after the reply queue.
    await channel.assertExchange(replyQueue.name, 'direct', { durable: false, autoDelete: true });
    await channel.bindQueue(replyQueue.name, replyQueue.name, replyQueue.name);
    await channel.consume(
      replyQueue.name,
      (msg) => {
        if (msg) this.emit('message', msg);
      },
      { noAck: true },
    );
    channel.on('return', (msg: amqpTypes.Message) => this.emit('return', msg));
    const confirm = await model.createConfirmChannel();
    confirm.on('error', () => {});
    return [channel, confirm];
  }

  #adopt(
    model: amqpTypes.ChannelModel,
    channel: amqpTypes.Channel,
    confirm: amqpTypes.ConfirmChannel,
    label: string,
  ): void {
    this.#model = model;
    this.#channel = channel;
    this.#confirm = confirm;
    this.#state = 'up';
    this.#host = label;
    this.#round = 0;
    if (this.#everConnected) this.#reconnects++;
    const wasDown = this.#logged.size > 0 || this.#everConnected;
    this.#everConnected = true;
    this.#logged.clear();
    // The host that worked is tried first next time.
    this.#next = this.#order.findIndex((h) => hostLabel(h) === label);
    this.#log.info(
      {
        code: LogEvent.MDA_RPC_CONNECTED,
        host: label,
        vhost: this.#s.vhost,
        replyQueue: this.#s.replyQueue.name,
      },
      wasDown ? 'connected to RabbitMQ again' : 'connected to RabbitMQ',
    );
    let gone = false;
    const lost = (why: string) => {
      if (gone) return;
      gone = true;
      if (this.#model !== model) return;
      this.#model = undefined;
      this.#channel = undefined;
      this.#confirm = undefined;
      this.#host = '';
      if (this.#state === 'closed') return;
      this.#disconnects++;
      this.#state = 'connecting';
      this.#log.error(
        { code: LogEvent.MDA_RPC_DISCONNECTED, host: label, reason: this.#scrub(why) },
        'lost the connection to RabbitMQ; reconnecting',
      );
      this.emit('down', why);
      model.close().catch(() => {});
      // Start with the next host: a restarting node is usually not back yet.
      this.#next = (this.#order.findIndex((h) => hostLabel(h) === label) + 1) % this.#order.length;
      void this.#connectRound();
    };
    model.on('close', (err?: Error) => lost(err ? errorText(err) : 'connection closed'));
    model.on('error', (err: Error) => lost(errorText(err)));
    model.on('blocked', (reason: string) =>
      this.#log.warn(
        { code: LogEvent.MDA_RPC_BLOCKED, host: label, reason },
        'RabbitMQ blocked the connection (resource alarm)',
      ),
    );
    model.on('unblocked', () =>
      this.#log.info({ code: LogEvent.MDA_RPC_UNBLOCKED, host: label }, 'RabbitMQ unblocked the connection'),
    );
    channel.on('close', () => lost('channel closed'));
    confirm.on('close', () => lost('channel closed'));
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.resolve(channel);
    }
    this.#waiters.clear();
    this.#up?.resolve();
    this.#up = undefined;
    this.emit('up', label);
  }

  #failed(label: string, err: unknown): void {
    const reason = this.#scrub(errorText(err));
    const key = `${label} ${reason}`;
    if (this.#logged.has(key)) {
      this.#log.debug(
        { code: LogEvent.MDA_RPC_CONNECT_FAILED, host: label, reason },
        'RabbitMQ connection failed',
      );
      return;
    }
    this.#logged.add(key);
    this.#log.error(
      {
        code: LogEvent.MDA_RPC_CONNECT_FAILED,
        host: label,
        vhost: this.#s.vhost,
        reason,
        hint: hintFor(reason),
      },
      'cannot connect to RabbitMQ; retrying',
    );
  }

  #scrub(text: string): string {
    let out = text;
    for (const s of this.#secrets) out = out.split(s).join('****');
    return out;
  }
}

/**
 * The wait after the `round`-th whole round of hosts failed (0-based), as oslo.messaging's: the retry
 * interval, plus the back-off for every earlier failed round, at most the maximum.
 */
export function retryDelayMs(
  round: number,
  s: Pick<BrokerSettings, 'retryIntervalMs' | 'retryBackoffMs' | 'retryMaxMs'>,
): number {
  return Math.min(s.retryIntervalMs + round * s.retryBackoffMs, Math.max(s.retryMaxMs, s.retryIntervalMs));
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message.replace(/\s+/g, ' ').slice(0, 400);
  return String(err).slice(0, 400);
}

function isPreconditionFailed(err: unknown): boolean {
  return (err as { code?: unknown })?.code === 406 || /PRECONDITION_FAILED/.test(errorText(err));
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** What to look at, for the common failures. */
function hintFor(reason: string): string | undefined {
  if (/ACCESS[-_]REFUSED|403/.test(reason))
    return 'the broker refused the user or password of transport_url (or rabbit_login_method)';
  if (/NOT_ALLOWED|530/.test(reason))
    return 'the user may not use this virtual host (rabbitmqctl set_permissions)';
  if (/ECONNREFUSED/.test(reason))
    return 'nothing listens there: is RabbitMQ running, and is the port right?';
  if (/ETIMEDOUT|timed? ?out/i.test(reason))
    return 'no answer from the host: network, firewall, or a stuck broker';
  if (/certificate|self[- ]signed|SSL|TLS|EPROTO/i.test(reason))
    return 'TLS failed: check [oslo_messaging_rabbit] ssl_ca_file (the CA of the broker certificate) and ssl_version';
  return undefined;
}
