/*
 * The RPC resolver's settings from the loaded configuration, built once: transport_url parsed and its query
 * applied over [oslo_messaging_rabbit] (as oslo.messaging does), the TLS files read (a ConfigError naming
 * the option at start rather than a failing connection later), the cross-option checks (EXTERNAL login
 * needs a client certificate), every time in milliseconds, the router cache and outage grace from
 * resolver/settings.ts, and the state reports' interval and host. createRpcResolver() wires objects from
 * these and converts nothing. Nothing here loads amqplib.
 */
import { hostname } from 'node:os';
import { type ConnectionOptions, checkServerIdentity } from 'node:tls';
import { ConfigError, LogEvent, type Logger } from '@nmp/common';
import { readConfigFile } from '../config-file.js';
import type { PortResolverSettings } from '../resolver/port-resolver.js';
import type { LookupSettings } from '../resolver/settings.js';
import type { BrokerSettings } from './broker-connection.js';
import { type RpcConfig, tlsVersion, URL_QUERY_OPTIONS } from './options.js';
import { describeTransport, parseTransportUrl, type TransportUrl } from './transport-url.js';

/** A setting worth a warning at start (logged with code MDA_CONFIG_WARNING and these fields). */
export interface ConfigWarning {
  readonly message: string;
  readonly fields?: Readonly<Record<string, string>>;
}

export interface RpcSettings {
  readonly url: TransportUrl;
  /** The effective options after the URL's query (what --print-config shows). */
  readonly effective: RpcConfig;
  /** transport_url with passwords masked, for logs and --print-config. */
  readonly transport: string;
  /** The broker connection, but for what is chosen when it is made (reply queue, connection name). */
  readonly broker: Omit<BrokerSettings, 'replyQueue' | 'connectionName' | 'version' | 'product'> & {
    readonly replyQueueExpiresMs: number;
    readonly haPolicy: boolean;
    /** kombu_failover_strategy = shuffle. */
    readonly shuffle: boolean;
  };
  /** The lookups: rpc_lookup_timeout and the resolver-wide router cache and outage grace. */
  readonly lookup: PortResolverSettings;
  /** rpc_lookup_batch_max: most addresses (or routers) one get_ports call of the lookups carries. */
  readonly lookupBatchMax: number;
  /** undefined when [AGENT] report_interval = 0. */
  readonly reports:
    | {
        readonly intervalMs: number;
        readonly host: string;
        readonly binary: string;
        readonly logHeartbeats: boolean;
      }
    | undefined;
  /** How long a hand-over waits for the broker before the predecessor is told to go (ms). */
  readonly handOverWaitMs: number;
  readonly warnings: readonly ConfigWarning[];
}

/** The RPC settings a configuration asks for. Throws ConfigError naming the option. */
export function rpcSettings(config: RpcConfig, lookup: LookupSettings): RpcSettings {
  const warnings: ConfigWarning[] = [];
  const { url, config: c } = rpcTransport(config, warnings);
  const tls = brokerTls(c);
  if (c.rabbitLoginMethod === 'EXTERNAL' && !(tls && c.rabbitSslCertFile))
    throw new ConfigError(
      '[oslo_messaging_rabbit] rabbit_login_method = EXTERNAL needs ssl = true and a client certificate (ssl_cert_file, ssl_key_file)',
    );
  const connectTimeoutMs = Math.round(c.rpcConnectTimeout * 1000);
  return {
    url,
    effective: c,
    transport: describeTransport(url, tls !== undefined),
    broker: {
      hosts: url.hosts,
      vhost: url.vhost,
      ...(tls ? { tls } : {}),
      loginMethod: c.rabbitLoginMethod,
      heartbeatTimeoutS: c.rabbitHeartbeatTimeout,
      connectTimeoutMs,
      retryIntervalMs: Math.round(c.rabbitRetryInterval * 1000),
      retryBackoffMs: Math.round(c.rabbitRetryBackoff * 1000),
      retryMaxMs: Math.round(c.rabbitIntervalMax * 1000),
      exchange: {
        name: c.controlExchange,
        durable: c.rabbitDurableQueues || c.rabbitQuorumQueue,
        autoDelete: c.rabbitAutoDelete,
      },
      replyQueueExpiresMs: c.rabbitTransientQueuesTtl * 1000,
      haPolicy: c.rabbitHaQueues,
      shuffle: c.rabbitFailoverStrategy === 'shuffle',
    },
    lookup: { timeoutMs: Math.round(c.rpcLookupTimeout * 1000), ...lookup },
    lookupBatchMax: c.rpcLookupBatchMax,
    reports:
      c.reportInterval > 0
        ? {
            intervalMs: Math.round(c.reportInterval * 1000),
            host: c.host === '' ? hostname() : c.host,
            binary: c.agentBinary,
            logHeartbeats: c.logAgentHeartbeats,
          }
        : undefined,
    handOverWaitMs: connectTimeoutMs + 5_000,
    warnings,
  };
}

/** transport_url and its query applied over [oslo_messaging_rabbit]; ConfigError when something is wrong. */
export function effectiveRpcConfig(
  config: RpcConfig,
  log?: Logger,
): { url: TransportUrl; config: RpcConfig } {
  const warnings: ConfigWarning[] = [];
  const out = rpcTransport(config, warnings);
  if (log) logWarnings(log, warnings);
  return out;
}

/** Each warning as a MDA_CONFIG_WARNING line. */
export function logWarnings(log: Logger, warnings: readonly ConfigWarning[]): void {
  for (const w of warnings) log.warn({ code: LogEvent.MDA_CONFIG_WARNING, ...w.fields }, w.message);
}

function rpcTransport(
  config: RpcConfig,
  warnings: ConfigWarning[],
): { url: TransportUrl; config: RpcConfig } {
  if (config.transportUrl === '')
    throw new ConfigError('resolver = rpc needs transport_url (as in neutron.conf)');
  const url = parseTransportUrl(config.transportUrl);
  const merged: Record<string, unknown> = { ...config };
  for (const [name, value] of Object.entries(url.query)) {
    const key = URL_QUERY_OPTIONS[name];
    if (key === undefined) {
      warnings.push({
        fields: { option: name },
        message: `transport_url: query parameter ${name} is not an [oslo_messaging_rabbit] option the agent uses; it is ignored`,
      });
      continue;
    }
    merged[key] = parseQueryValue(name, value, config[key]);
  }
  const mixed = url.hosts.some((h) => h.hasCredentials) && url.hosts.some((h) => !h.hasCredentials);
  if (mixed)
    warnings.push({
      message:
        'transport_url: some hosts have USER:PASS@ and some not; those without use guest/guest (as oslo.messaging)',
    });
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

/** TLS options for the broker: the chain always verified; the host name only when asked. */
export function brokerTls(c: RpcConfig): ConnectionOptions | undefined {
  if (!c.rabbitSsl) return undefined;
  const version = tlsVersion(c.rabbitSslVersion) ?? '';
  if ((c.rabbitSslCertFile === '') !== (c.rabbitSslKeyFile === ''))
    throw new ConfigError('[oslo_messaging_rabbit] ssl_cert_file and ssl_key_file go together');
  const read = (option: string, path: string) => readConfigFile(`[oslo_messaging_rabbit] ${option}`, path);
  return {
    rejectUnauthorized: true,
    ...(c.rabbitSslCaFile ? { ca: read('ssl_ca_file', c.rabbitSslCaFile) } : {}),
    ...(c.rabbitSslCertFile ? { cert: read('ssl_cert_file', c.rabbitSslCertFile) } : {}),
    ...(c.rabbitSslKeyFile ? { key: read('ssl_key_file', c.rabbitSslKeyFile) } : {}),
    ...(version ? { minVersion: version, maxVersion: version } : {}),
    // oslo checks the name only with ssl_enforce_hostname_verification; the chain is checked regardless.
    ...(c.rabbitSslHostnameVerification ? { checkServerIdentity } : { checkServerIdentity: () => undefined }),
  };
}
