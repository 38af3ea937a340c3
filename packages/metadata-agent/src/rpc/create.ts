/*
 * Builds the RPC resolver and the state reporter from the loaded configuration: parses transport_url
 * (query parameters override [oslo_messaging_rabbit], as in oslo.messaging), reads the TLS files once (a
 * ConfigError naming the option, at start, rather than a failing connection later), and wires one broker
 * connection, one reply queue and one RPC client that the lookups and the reports share.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { type ConnectionOptions, checkServerIdentity } from 'node:tls';
import { ConfigError, LogEvent, type Logger } from '@nmp/common';
import { BrokerConnection } from './broker-connection.js';
import { adminContext, hexId } from './envelope.js';
import { type RpcConfig, tlsVersion, URL_QUERY_OPTIONS } from './options.js';
import { RpcClient, type RpcObserver } from './rpc-client.js';
import { brokerLink, RpcResolver } from './rpc-resolver.js';
import { StateReporter } from './state-reporter.js';
import { describeTransport, parseTransportUrl, type TransportUrl } from './transport-url.js';

export interface RpcParts {
  readonly resolver: RpcResolver;
  readonly client: RpcClient;
  readonly broker: BrokerConnection;
  /** undefined when report_interval = 0. */
  readonly reporter?: StateReporter;
  /** transport_url with passwords masked, for logs and --print-config. */
  readonly transport: string;
  /** The effective settings after the URL's query (what --print-config shows). */
  readonly effective: RpcConfig;
}

/** What the state report says about this agent besides the RPC options. */
export interface ReportFacts {
  readonly version: string;
  readonly socketPath: string;
  readonly novaHost: string;
  readonly novaPort: number;
}

export interface RpcOptions {
  readonly config: RpcConfig;
  readonly routerCacheTtlMs: number;
  /** While the broker is known unreachable, how long a lookup waits for it (ms). */
  readonly outageGraceMs?: number;
  readonly facts: ReportFacts;
  readonly observer?: RpcObserver;
}

/** transport_url and its query applied over [oslo_messaging_rabbit]; ConfigError when something is wrong. */
export function effectiveRpcConfig(
  config: RpcConfig,
  log?: Logger,
): { url: TransportUrl; config: RpcConfig } {
  if (config.transportUrl === '')
    throw new ConfigError('resolver = rpc needs transport_url (as in neutron.conf)');
  const url = parseTransportUrl(config.transportUrl);
  const merged: Record<string, unknown> = { ...config };
  for (const [name, value] of Object.entries(url.query)) {
    const key = URL_QUERY_OPTIONS[name];
    if (key === undefined) {
      log?.warn(
        { code: LogEvent.MDA_CONFIG_WARNING, option: name },
        `transport_url: query parameter ${name} is not an [oslo_messaging_rabbit] option the agent uses; it is ignored`,
      );
      continue;
    }
    merged[key] = parseQueryValue(name, value, config[key]);
  }
  const mixed = url.hosts.some((h) => h.hasCredentials) && url.hosts.some((h) => !h.hasCredentials);
  if (mixed)
    log?.warn(
      { code: LogEvent.MDA_CONFIG_WARNING },
      'transport_url: some hosts have USER:PASS@ and some not; those without use guest/guest (as oslo.messaging)',
    );
  return { url, config: Object.freeze(merged) as RpcConfig };
}

function parseQueryValue(name: string, value: string, current: unknown): unknown {
  const fail = (why: string): never => {
    throw new ConfigError(`transport_url: query parameter ${name}: ${why}`);
  };
  if (typeof current === 'boolean') {
    const t = value.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(t)) return true;
    if (['0', 'false', 'no', 'off'].includes(t)) return false;
    return fail('expected true or false');
  }
  if (typeof current === 'number') {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) return fail('expected a number');
    return n;
  }
  if (name === 'rabbit_login_method') {
    const v = value.trim().toUpperCase();
    if (!['AMQPLAIN', 'PLAIN', 'EXTERNAL'].includes(v)) return fail('expected AMQPLAIN, PLAIN or EXTERNAL');
    return v;
  }
  if (name === 'kombu_failover_strategy') {
    if (value !== 'round-robin' && value !== 'shuffle') return fail('expected round-robin or shuffle');
    return value;
  }
  if (name === 'ssl_version' && tlsVersion(value) === undefined) return fail('unknown TLS version');
  return value;
}

function readPem(path: string, option: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(
      `[oslo_messaging_rabbit] ${option} ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

/** TLS options for the broker: the chain always verified; the host name only when asked. */
export function brokerTls(c: RpcConfig): ConnectionOptions | undefined {
  if (!c.rabbitSsl) return undefined;
  const version = tlsVersion(c.rabbitSslVersion) ?? '';
  if ((c.rabbitSslCertFile === '') !== (c.rabbitSslKeyFile === ''))
    throw new ConfigError('[oslo_messaging_rabbit] ssl_cert_file and ssl_key_file go together');
  return {
    rejectUnauthorized: true,
    ...(c.rabbitSslCaFile ? { ca: readPem(c.rabbitSslCaFile, 'ssl_ca_file') } : {}),
    ...(c.rabbitSslCertFile ? { cert: readPem(c.rabbitSslCertFile, 'ssl_cert_file') } : {}),
    ...(c.rabbitSslKeyFile ? { key: readPem(c.rabbitSslKeyFile, 'ssl_key_file') } : {}),
    ...(version ? { minVersion: version, maxVersion: version } : {}),
    // oslo checks the name only with ssl_enforce_hostname_verification; the chain is checked regardless.
    ...(c.rabbitSslHostnameVerification ? { checkServerIdentity } : { checkServerIdentity: () => undefined }),
  };
}

export function createRpcResolver(options: RpcOptions, logger: Logger): RpcParts {
  const log = logger.child({ component: 'rpc' });
  const { url, config: c } = effectiveRpcConfig(options.config, log);
  const tls = brokerTls(c);
  if (c.rabbitLoginMethod === 'EXTERNAL' && !(tls && c.rabbitSslCertFile))
    throw new ConfigError(
      '[oslo_messaging_rabbit] rabbit_login_method = EXTERNAL needs ssl = true and a client certificate (ssl_cert_file, ssl_key_file)',
    );
  const replyQueue = `reply_${hexId()}`;
  const broker = new BrokerConnection(
    {
      hosts: url.hosts,
      vhost: url.vhost,
      ...(tls ? { tls } : {}),
      loginMethod: c.rabbitLoginMethod,
      heartbeatTimeoutS: c.rabbitHeartbeatTimeout,
      connectTimeoutMs: Math.round(c.rpcConnectTimeout * 1000),
      retryIntervalMs: Math.round(c.rabbitRetryInterval * 1000),
      retryBackoffMs: Math.round(c.rabbitRetryBackoff * 1000),
      retryMaxMs: Math.round(c.rabbitIntervalMax * 1000),
      exchange: {
        name: c.controlExchange,
        durable: c.rabbitDurableQueues || c.rabbitQuorumQueue,
        autoDelete: c.rabbitAutoDelete,
      },
      replyQueue: {
        name: replyQueue,
        expiresMs: c.rabbitTransientQueuesTtl * 1000,
        haPolicy: c.rabbitHaQueues,
      },
      connectionName: `metadata-agent:${process.pid}:${replyQueue.slice(6)}`,
      version: options.facts.version,
    },
    log,
    c.rabbitFailoverStrategy === 'shuffle',
  );
  const client = new RpcClient(
    broker,
    {
      exchange: c.controlExchange,
      replyQueue,
      context: () => adminContext(),
      ...(options.observer ? { observer: options.observer } : {}),
    },
    log,
  );
  const resolver = new RpcResolver(
    client,
    {
      timeoutMs: Math.round(c.rpcLookupTimeout * 1000),
      routerCacheTtlMs: options.routerCacheTtlMs,
      routerCacheSize: 4096,
      routerRecheckAfterMs: 1000,
      outageGraceMs: options.outageGraceMs,
    },
    log,
    async () => {
      reporter?.stop();
      client.abortAll('the agent is stopping');
      await broker.close();
    },
    brokerLink(broker),
  );
  const reporter =
    c.reportInterval > 0
      ? new StateReporter(
          client,
          {
            intervalMs: Math.round(c.reportInterval * 1000),
            host: c.host === '' ? hostname() : c.host,
            binary: c.agentBinary,
            configurations: {
              metadata_proxy_socket: options.facts.socketPath,
              nova_metadata_host: options.facts.novaHost,
              nova_metadata_port: options.facts.novaPort,
              log_agent_heartbeats: c.logAgentHeartbeats,
              nmp_version: options.facts.version,
              nmp_resolver: 'rpc',
            },
            logHeartbeats: c.logAgentHeartbeats,
          },
          log,
        )
      : undefined;
  return {
    resolver,
    client,
    broker,
    ...(reporter ? { reporter } : {}),
    transport: describeTransport(url, tls !== undefined),
    effective: c,
  };
}
