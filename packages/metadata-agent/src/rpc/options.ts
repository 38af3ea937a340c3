/*
 * Configuration of the RPC resolver and the state reports, with the names neutron.conf already uses:
 * `[DEFAULT] transport_url`, `control_exchange`, `host`, `[AGENT] report_interval`, and oslo.messaging's
 * `[oslo_messaging_rabbit]` options that change what goes on the wire (exchange durability, reply queue
 * arguments, TLS, login method, heartbeats, reconnect back-off). A stock neutron.conf therefore configures
 * the agent without a line added. What oslo does not have (the per-lookup deadline) has names in the
 * same style. The agent merges `rpcSchema` into its own schema; `rpcSettings()` turns the loaded values
 * into the typed settings of createRpcResolver().
 */
import { type ConfigOf, opt } from '@nmp/common';

const RABBIT = 'oslo_messaging_rabbit';
const AGENT = 'AGENT';

export const rpcSchema = {
  transportUrl: opt.string({
    name: 'transport_url',
    default: '',
    // It holds the broker password: never a flag, never printed (--print-config shows it masked).
    secret: true,
    help: 'oslo.messaging URL of the RabbitMQ cluster, as in neutron.conf: rabbit://USER:PASS@HOST:5672[,USER:PASS@HOST2:5672]/VHOST[?ssl=1]; setting it selects resolver = rpc (unless resolver says otherwise)',
  }),
  controlExchange: opt.string({
    name: 'control_exchange',
    default: 'neutron',
    help: "Exchange neutron-server's RPC topics live on (neutron's default)",
  }),
  host: opt.string({
    name: 'host',
    default: '',
    help: "This node's name in neutron's agent list (state reports); empty = the machine's hostname, as neutron",
  }),
  rpcLookupTimeout: opt.float({
    name: 'rpc_lookup_timeout',
    default: 5,
    min: 0.1,
    help: 'Seconds one port lookup over RPC may take (waiting for the broker, both calls of router mode) before the instance gets 503; neutron_lib back-off is never used',
  }),
  rpcLookupBatchMax: opt.int({
    name: 'rpc_lookup_batch_max',
    default: 1,
    min: 1,
    max: 1000,
    help: "Most addresses one get_ports call carries. 1 (default): one address per call, as neutron's agent asks. Above 1: uncached lookups on a network that arrive while a call for it is in flight wait for it and go out together when it returns (a lone lookup goes at once)",
  }),
  rpcConnectTimeout: opt.float({
    name: 'rpc_connect_timeout',
    default: 5,
    min: 0.1,
    help: 'Seconds to open a connection to one RabbitMQ host (TCP, TLS and AMQP handshake) before trying the next',
  }),

  reportInterval: opt.float({
    name: 'report_interval',
    group: AGENT,
    default: 30,
    min: 0,
    help: 'Seconds between state reports to neutron-server (resolver = rpc); 0 = no reports',
  }),
  logAgentHeartbeats: opt.bool({
    name: 'log_agent_heartbeats',
    group: AGENT,
    default: false,
    help: 'Sent in the reports (neutron-server then logs each one); we also log every report at info level',
  }),
  agentBinary: opt.string({
    name: 'agent_binary',
    group: AGENT,
    default: 'neutron-metadata-agent',
    help: "The binary name in the state reports (what 'openstack network agent list' shows)",
  }),

  rabbitSsl: opt.bool({
    name: 'ssl',
    group: RABBIT,
    flag: 'rabbit-ssl',
    default: false,
    deprecatedNames: ['rabbit_use_ssl'],
    help: 'Connect to RabbitMQ over TLS (also ?ssl=1 in transport_url)',
  }),
  rabbitSslCaFile: opt.string({
    name: 'ssl_ca_file',
    group: RABBIT,
    flag: 'rabbit-ssl-ca-file',
    default: '',
    deprecatedNames: ['kombu_ssl_ca_certs'],
    help: "PEM CA bundle that signs the broker's certificate (system CAs when empty; the chain is always verified)",
  }),
  rabbitSslCertFile: opt.string({
    name: 'ssl_cert_file',
    group: RABBIT,
    flag: 'rabbit-ssl-cert-file',
    default: '',
    deprecatedNames: ['kombu_ssl_certfile'],
    help: 'Client certificate for RabbitMQ (with ssl_key_file)',
  }),
  rabbitSslKeyFile: opt.string({
    name: 'ssl_key_file',
    group: RABBIT,
    flag: 'rabbit-ssl-key-file',
    default: '',
    deprecatedNames: ['kombu_ssl_keyfile'],
    help: 'Private key of the client certificate',
  }),
  rabbitSslVersion: opt.string({
    name: 'ssl_version',
    group: RABBIT,
    flag: 'rabbit-ssl-version',
    default: '',
    deprecatedNames: ['kombu_ssl_version'],
    help: "TLS version to use: TLSv1_2, TLSv1_3 (exactly that one) or empty/SSLv23 (negotiated, at least node's minimum)",
    check: (v) =>
      tlsVersion(v) === undefined ? 'expected TLSv1_2, TLSv1_3, TLSv1_1, TLSv1, SSLv23 or empty' : undefined,
  }),
  rabbitSslHostnameVerification: opt.bool({
    name: 'ssl_enforce_hostname_verification',
    group: RABBIT,
    flag: 'rabbit-ssl-enforce-hostname-verification',
    default: false,
    help: "Also check that the broker's certificate names the host in transport_url (the chain is verified either way)",
  }),
  rabbitLoginMethod: opt.enum({
    name: 'rabbit_login_method',
    group: RABBIT,
    flag: 'rabbit-login-method',
    default: 'AMQPLAIN',
    choices: ['AMQPLAIN', 'PLAIN', 'EXTERNAL'] as const,
    help: 'SASL mechanism: AMQPLAIN (oslo default), PLAIN, or EXTERNAL (client certificate)',
  }),
  rabbitDurableQueues: opt.bool({
    name: 'amqp_durable_queues',
    group: RABBIT,
    flag: 'rabbit-amqp-durable-queues',
    default: false,
    help: 'Declare the control exchange durable, as neutron-server does with this option (must match it)',
  }),
  rabbitAutoDelete: opt.bool({
    name: 'amqp_auto_delete',
    group: RABBIT,
    flag: 'rabbit-amqp-auto-delete',
    default: false,
    help: 'Declare the control exchange auto-delete, as neutron-server does with this option (must match it)',
  }),
  rabbitQuorumQueue: opt.bool({
    name: 'rabbit_quorum_queue',
    group: RABBIT,
    flag: 'rabbit-quorum-queue',
    default: false,
    help: 'neutron-server uses quorum queues: the control exchange is then durable',
  }),
  rabbitHaQueues: opt.bool({
    name: 'rabbit_ha_queues',
    group: RABBIT,
    flag: 'rabbit-ha-queues',
    default: false,
    help: 'Declare the reply queue with x-ha-policy: all (RabbitMQ before 3.0)',
  }),
  rabbitTransientQueuesTtl: opt.int({
    name: 'rabbit_transient_queues_ttl',
    group: RABBIT,
    flag: 'rabbit-transient-queues-ttl',
    default: 1800,
    min: 1,
    help: 'Seconds an unused reply queue survives on the broker (x-expires)',
  }),
  rabbitHeartbeatTimeout: opt.int({
    name: 'heartbeat_timeout_threshold',
    group: RABBIT,
    flag: 'rabbit-heartbeat-timeout-threshold',
    default: 60,
    min: 0,
    help: 'Seconds without a frame from the broker after which the connection is considered dead and replaced (0: no heartbeats)',
  }),
  rabbitRetryInterval: opt.float({
    name: 'rabbit_retry_interval',
    group: RABBIT,
    flag: 'rabbit-retry-interval',
    default: 1,
    min: 0,
    help: 'Seconds before the first reconnection attempt after every host failed',
  }),
  rabbitRetryBackoff: opt.float({
    name: 'rabbit_retry_backoff',
    group: RABBIT,
    flag: 'rabbit-retry-backoff',
    default: 2,
    min: 0,
    help: 'Seconds added to the wait after each further failed round',
  }),
  rabbitIntervalMax: opt.float({
    name: 'rabbit_interval_max',
    group: RABBIT,
    flag: 'rabbit-interval-max',
    default: 30,
    min: 0,
    help: 'Longest wait between reconnection rounds (seconds)',
  }),
  rabbitFailoverStrategy: opt.enum({
    name: 'kombu_failover_strategy',
    group: RABBIT,
    flag: 'rabbit-kombu-failover-strategy',
    default: 'round-robin',
    choices: ['round-robin', 'shuffle'] as const,
    help: 'Order in which the hosts of transport_url are tried: as written (round-robin) or shuffled once at start',
  }),
};

export type RpcConfig = ConfigOf<typeof rpcSchema>;

/** `[oslo_messaging_rabbit]` options a transport_url query may override, as oslo.messaging allows. */
export const URL_QUERY_OPTIONS: Readonly<Record<string, keyof RpcConfig>> = {
  ssl: 'rabbitSsl',
  ssl_ca_file: 'rabbitSslCaFile',
  ssl_cert_file: 'rabbitSslCertFile',
  ssl_key_file: 'rabbitSslKeyFile',
  ssl_version: 'rabbitSslVersion',
  ssl_enforce_hostname_verification: 'rabbitSslHostnameVerification',
  rabbit_login_method: 'rabbitLoginMethod',
  amqp_durable_queues: 'rabbitDurableQueues',
  amqp_auto_delete: 'rabbitAutoDelete',
  rabbit_quorum_queue: 'rabbitQuorumQueue',
  rabbit_ha_queues: 'rabbitHaQueues',
  rabbit_transient_queues_ttl: 'rabbitTransientQueuesTtl',
  heartbeat_timeout_threshold: 'rabbitHeartbeatTimeout',
  rabbit_retry_interval: 'rabbitRetryInterval',
  rabbit_retry_backoff: 'rabbitRetryBackoff',
  rabbit_interval_max: 'rabbitIntervalMax',
  kombu_failover_strategy: 'rabbitFailoverStrategy',
};

/** Node's TLS version for oslo's ssl_version ('' = negotiate), or undefined when not a known name. */
export function tlsVersion(v: string): 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' | '' | undefined {
  const t = v.trim().toLowerCase();
  if (t === '' || t === 'sslv23' || t === 'tls') return '';
  const table = { tlsv1: 'TLSv1', tlsv1_1: 'TLSv1.1', tlsv1_2: 'TLSv1.2', tlsv1_3: 'TLSv1.3' } as const;
  return table[t as keyof typeof table];
}
