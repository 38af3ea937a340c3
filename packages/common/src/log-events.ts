/*
 * One table of every log line that carries a code and reports no failure of a request (errors.ts has
 * those): starts, connections, reloads, warnings about the configuration, and what the OVSDB and RabbitMQ
 * clients see. Every `code` a log call writes is a key of LOG_EVENTS (through `LogEvent.X`) or of the error
 * tables, so an unlisted code does not compile. Codes are never reused or renamed: operators alert on them.
 * docs/log-events.md is generated from this table.
 */
import type { LogLevel } from './errors.js';

/** The programs (the `PROGRAMS` of @nmp/release, the release tool and the development Nova). */
export type ProgramName =
  | 'metadata-agent'
  | 'ns-metadata-proxy'
  | 'metadata-hooks'
  | 'metadata-proxy-daemon'
  | 'ovn-metadata-provisioner'
  | 'nmp-release'
  | 'nova-metadata-dev';

export interface LogEventSpec {
  /** Level of the line; two when it depends (e.g. the first failure at `error`, repeats at `debug`). */
  readonly level: LogLevel | readonly LogLevel[];
  /** The programs that write it. */
  readonly programs: readonly ProgramName[];
  /** One sentence for docs/log-events.md: what happened and what to look at. */
  readonly doc: string;
}

const AGENT = ['metadata-agent'] as const;
const OVN = ['metadata-agent', 'ovn-metadata-provisioner'] as const;
const SERVICES = ['metadata-agent', 'ns-metadata-proxy', 'metadata-proxy-daemon'] as const;
const PROXIES = ['ns-metadata-proxy', 'metadata-proxy-daemon'] as const;

export const LOG_EVENTS = {
  // Every long-running program
  NMP_HANDED_OVER: {
    level: 'info',
    programs: SERVICES,
    doc: 'SIGUSR2: the successor process took over the listening sockets and is ready; this process retires.',
  },
  NMP_HANDOVER_FAILED: {
    level: 'error',
    programs: SERVICES,
    doc: 'SIGUSR2: the successor could not be started or did not become ready; this process keeps serving.',
  },
  NMP_SYSTEMD_NOTIFY_FAILED: {
    level: 'warn',
    programs: SERVICES,
    doc: 'systemd-notify (READY=1, MAINPID=...) failed; with Type=notify systemd may consider the start failed.',
  },

  // Configuration
  MDA_CONFIG_WARNING: {
    level: 'warn',
    programs: OVN,
    doc: 'An unknown or deprecated option in a config file (with its file and line), or an ignored transport_url parameter; it has no effect.',
  },
  MDA_CONFIG_IGNORED: {
    level: 'info',
    programs: AGENT,
    doc: "At start: neutron's and oslo's options found in the files that are accepted without effect (docs/configuration.md).",
  },
  MDA_CONFIG_EMPTY_SECRET: {
    level: 'warn',
    programs: AGENT,
    doc: "metadata_proxy_shared_secret is empty: Nova cannot tell the agent's requests from forged ones.",
  },
  MDA_CONFIG_WORLD_READABLE: {
    level: 'warn',
    programs: AGENT,
    doc: 'A config file that may hold secrets, or a file that holds one, is readable by everyone: chmod o-r it.',
  },
  MDA_CONFIG_RELOADED: {
    level: 'info',
    programs: AGENT,
    doc: 'SIGHUP: the configuration was read again; the line names the options applied.',
  },
  MDA_CONFIG_RELOAD_FAILED: {
    level: 'error',
    programs: AGENT,
    doc: 'SIGHUP: the configuration does not load (the line says why); the running configuration is kept.',
  },
  MDA_CONFIG_RESTART_NEEDED: {
    level: 'warn',
    programs: AGENT,
    doc: 'SIGHUP: options changed that take effect only after a restart; they keep their running values.',
  },
  MDP_CONFIG_WARNING: {
    level: 'warn',
    programs: PROXIES,
    doc: 'An unknown or deprecated option, a problem with the session-token key file, or a passed listening socket that matches no bind (closed).',
  },

  // Request lines that are not failures
  MDA_STALE_ANSWER: {
    level: 'warn',
    programs: AGENT,
    doc: '[cache] serve_stale_on_outage: the lookup service is down and the instance was answered from the last verified lookup of its address (staleAgeS says how old).',
  },
  client_closed: {
    level: 'info',
    programs: PROXIES,
    doc: 'The instance closed its connection before the answer was complete (a guest giving up); nothing is wrong on this side.',
  },
  client_timeout: {
    level: 'warn',
    programs: PROXIES,
    doc: 'The instance read none of the answer within the client timeout (a slow-read attack or a dead peer); the connection was closed.',
  },

  // resolver = rpc: RabbitMQ and neutron-server
  MDA_RPC_CONNECTED: {
    level: 'info',
    programs: AGENT,
    doc: 'Connected (again) to a RabbitMQ host of transport_url; the line names the host, vhost and reply queue.',
  },
  MDA_RPC_DISCONNECTED: {
    level: 'error',
    programs: AGENT,
    doc: 'The connection to RabbitMQ was lost; the agent reconnects to the hosts of transport_url in turn.',
  },
  MDA_RPC_CONNECT_FAILED: {
    level: ['error', 'debug'],
    programs: AGENT,
    doc: 'A RabbitMQ host refused or could not be reached; the line has a hint (credentials, vhost, TLS). Logged at error once per host and reason, then at debug.',
  },
  MDA_RPC_RETRY: {
    level: 'debug',
    programs: AGENT,
    doc: 'No RabbitMQ host was reachable in this round; the next round starts after waitMs.',
  },
  MDA_RPC_BLOCKED: {
    level: 'warn',
    programs: AGENT,
    doc: 'RabbitMQ blocked the connection (a memory or disk resource alarm on the broker): lookups wait until it is unblocked.',
  },
  MDA_RPC_UNBLOCKED: {
    level: 'info',
    programs: AGENT,
    doc: 'RabbitMQ unblocked the connection after a resource alarm.',
  },
  MDA_RPC_EXCHANGE_MISMATCH: {
    level: 'warn',
    programs: AGENT,
    doc: 'The control exchange exists with other durable/auto-delete flags than the agent declares; it is used as it is.',
  },
  MDA_RPC_BAD_REPLY: {
    level: 'warn',
    programs: AGENT,
    doc: 'A message on the reply queue is not an oslo.messaging reply; it was dropped.',
  },
  MDA_RPC_LATE_REPLY: {
    level: 'debug',
    programs: AGENT,
    doc: 'A reply arrived for a call that had already ended (timed out); it was dropped.',
  },
  MDA_RPC_STATE_REPORTED: {
    level: ['info', 'debug'],
    programs: AGENT,
    doc: 'A state report reached neutron-server (the agent appears in `openstack network agent list`): info for the first one and after failures, debug otherwise (info with log_agent_heartbeats).',
  },
  MDA_RPC_STATE_REPORT_FAILED: {
    level: ['warn', 'debug'],
    programs: AGENT,
    doc: 'A state report to neutron-server failed (warn the first time, debug while it keeps failing); retried every report_interval.',
  },

  // OVN (docs/deployment.md section 9)
  MDA_OVN_STARTING: {
    level: 'info',
    programs: AGENT,
    doc: 'The OVN resolver starts: the line names the chassis, the Southbound remotes and the lookup scope.',
  },
  MDA_OVN_START_FAILED: {
    level: 'error',
    programs: AGENT,
    doc: 'The OVN resolver cannot start (the line says why); lookups fail with MDA_ERR_RESOLVER_UNAVAILABLE.',
  },
  MDA_OVN_CHASSIS: {
    level: 'info',
    programs: OVN,
    doc: "This chassis' row appeared in or left the Southbound (uuid null when it left).",
  },
  MDA_OVN_NO_CHASSIS: {
    level: 'warn',
    programs: OVN,
    doc: 'No external_ids:system-id in the local Open_vSwitch database yet: waiting for the chassis name.',
  },
  MDA_OVN_SB_DATA: {
    level: 'warn',
    programs: OVN,
    doc: 'The Southbound sent a value that does not fit its schema; it was dropped (`problem` is one of the OVSDB_REPLICA_ codes).',
  },
  MDA_OVN_SB_CONDITION: {
    level: 'warn',
    programs: OVN,
    doc: 'The Port_Binding monitor condition could not be changed to follow this chassis.',
  },
  MDA_OVN_LIVENESS: {
    level: 'debug',
    programs: AGENT,
    doc: "The agent's liveness keys were written to Chassis_Private (or Chassis).",
  },
  MDA_OVN_LIVENESS_FAILED: {
    level: 'warn',
    programs: AGENT,
    doc: 'The liveness keys could not be written to the Southbound; retried. neutron-server may show the agent as down meanwhile.',
  },
  MDA_OVN_PROVISIONED: {
    level: 'info',
    programs: ['ovn-metadata-provisioner'],
    doc: "A network's metadata namespace was provisioned (or changed): namespace, addresses and proxy.",
  },
  MDA_OVN_TORN_DOWN: {
    level: 'info',
    programs: ['ovn-metadata-provisioner'],
    doc: "A network's metadata namespace was removed (no port of it on this chassis any more, or the network is gone).",
  },
  MDA_OVN_PROVISION_FAILED: {
    level: ['error', 'warn'],
    programs: ['ovn-metadata-provisioner'],
    doc: "One network's namespace could not be provisioned or removed; retried with back-off (error the first time, warn after), the others are not affected.",
  },
  MDA_OVN_BAD_NETWORK: {
    level: 'warn',
    programs: ['ovn-metadata-provisioner'],
    doc: 'A network name that cannot become a namespace or device name; ignored.',
  },
  MDA_OVN_STATUS_FILE: {
    level: 'warn',
    programs: ['ovn-metadata-provisioner'],
    doc: 'The status file could not be written (the line says why); provisioning goes on.',
  },

  // The OVSDB client (Southbound and local Open_vSwitch)
  OVSDB_CONNECTED: {
    level: 'info',
    programs: OVN,
    doc: 'Connected to a database server; the line names the remote, the database and the monitor method.',
  },
  OVSDB_DISCONNECTED: {
    level: 'warn',
    programs: OVN,
    doc: 'Lost the database connection; reconnecting (to the next remote of a cluster).',
  },
  OVSDB_CONNECT_FAILED: {
    level: 'warn',
    programs: OVN,
    doc: 'Could not connect to a database server (the line says why); the next remote is tried after a back-off.',
  },
  OVSDB_SERVER_SKIPPED: {
    level: 'info',
    programs: OVN,
    doc: 'A cluster member not connected to its cluster, behind, or not the leader when one is wanted; the next is tried.',
  },
  OVSDB_MESSAGE_DROPPED: {
    level: 'warn',
    programs: OVN,
    doc: 'A message from the server that is not valid JSON-RPC for this client; dropped.',
  },
  OVSDB_SCHEMA_LACKS: {
    level: 'info',
    programs: OVN,
    doc: "The server's schema lacks some monitored tables or columns (an older OVN); they are read as absent.",
  },
  OVSDB_UNKNOWN_MONITOR: {
    level: 'debug',
    programs: OVN,
    doc: 'An update for a monitor this session did not set up (a late one of a previous session); ignored.',
  },
  // Reported as `problem` of MDA_OVN_SB_DATA
  OVSDB_REPLICA_BAD_UPDATE: {
    level: 'warn',
    programs: OVN,
    doc: 'A monitor update that does not have the shape RFC 7047 gives it; the part was dropped.',
  },
  OVSDB_REPLICA_BAD_VALUE: {
    level: 'warn',
    programs: OVN,
    doc: 'A column value that does not fit the column type; the row keeps its other columns.',
  },
  OVSDB_REPLICA_DIVERGED: {
    level: 'warn',
    programs: OVN,
    doc: 'An update that does not apply to the rows held (e.g. a modify of an unknown row); the client reconnects to fetch everything again.',
  },
  OVSDB_REPLICA_LISTENER_FAILED: {
    level: 'warn',
    programs: OVN,
    doc: 'Code reacting to a change threw (a bug; please report it with the line); the replica is kept.',
  },
} as const satisfies Record<string, LogEventSpec>;

export type LogEventCode = keyof typeof LOG_EVENTS;

/** `LogEvent.X` is `'X'`, for `log.info({ code: LogEvent.X, ... })`: only listed codes exist. */
export const LogEvent: { readonly [K in LogEventCode]: K } = Object.freeze(
  Object.fromEntries(Object.keys(LOG_EVENTS).map((k) => [k, k])),
) as { readonly [K in LogEventCode]: K };
