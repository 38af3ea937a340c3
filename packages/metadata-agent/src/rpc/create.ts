/*
 * Builds the RPC resolver and the state reporter from the RPC settings (rpc/settings.ts: transport_url and
 * its query, the TLS files read, every time in milliseconds): one broker connection, one reply queue and one
 * RPC client that the lookups and the reports share. createRpcResolver() also takes the loaded
 * configuration directly (tests, benchmarks) and builds the settings itself.
 */
import type { Logger } from '@nmp/common';
import { ROUTER_CACHE_SIZE, ROUTER_RECHECK_AFTER_MS } from '../resolver/settings.js';
import { BrokerConnection } from './broker-connection.js';
import { adminContext, hexId } from './envelope.js';
import type { RpcConfig } from './options.js';
import { RpcClient, type RpcObserver } from './rpc-client.js';
import { brokerLink, RpcResolver } from './rpc-resolver.js';
import { logWarnings, type RpcSettings, rpcSettings } from './settings.js';
import { StateReporter } from './state-reporter.js';

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

/**
 * The RPC resolver from the loaded configuration (the router cache and outage grace given, the rest from
 * `config`); its warnings are logged here. The agent's CLI uses startRpcResolver with its settings instead.
 */
export function createRpcResolver(options: RpcOptions, logger: Logger): RpcParts {
  const settings = rpcSettings(options.config, {
    routerCacheTtlMs: options.routerCacheTtlMs,
    routerCacheSize: ROUTER_CACHE_SIZE,
    routerRecheckAfterMs: ROUTER_RECHECK_AFTER_MS,
    outageGraceMs: options.outageGraceMs,
  });
  logWarnings(logger.child({ component: 'rpc' }), settings.warnings);
  return startRpcResolver(
    settings,
    { facts: options.facts, ...(options.observer ? { observer: options.observer } : {}) },
    logger,
  );
}

/** Wire the broker connection, the RPC client, the resolver and the reporter the settings describe. */
export function startRpcResolver(
  s: RpcSettings,
  options: { readonly facts: ReportFacts; readonly observer?: RpcObserver },
  logger: Logger,
): RpcParts {
  const log = logger.child({ component: 'rpc' });
  const c = s.effective;
  const { replyQueueExpiresMs, haPolicy, shuffle, ...broker } = s.broker;
  const replyQueue = `reply_${hexId()}`;
  const connection = new BrokerConnection(
    {
      ...broker,
      replyQueue: { name: replyQueue, expiresMs: replyQueueExpiresMs, haPolicy },
      connectionName: `metadata-agent:${process.pid}:${replyQueue.slice(6)}`,
      version: options.facts.version,
    },
    log,
    shuffle,
  );
  const client = new RpcClient(
    connection,
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
    s.lookup,
    log,
    async () => {
      reporter?.stop();
      client.abortAll('the agent is stopping');
      await connection.close();
    },
    brokerLink(connection),
    {
      batchMax: s.lookupBatchMax,
      ...(options.observer?.lookupBatch ? { observer: options.observer } : {}),
    },
  );
  const reports = s.reports;
  const reporter = reports
    ? new StateReporter(
        client,
        {
          intervalMs: reports.intervalMs,
          host: reports.host,
          binary: reports.binary,
          configurations: {
            metadata_proxy_socket: options.facts.socketPath,
            nova_metadata_host: options.facts.novaHost,
            nova_metadata_port: options.facts.novaPort,
            log_agent_heartbeats: reports.logHeartbeats,
            nmp_version: options.facts.version,
            nmp_resolver: 'rpc',
          },
          logHeartbeats: reports.logHeartbeats,
        },
        log,
      )
    : undefined;
  return {
    resolver,
    client,
    broker: connection,
    ...(reporter ? { reporter } : {}),
    transport: s.transport,
    effective: c,
  };
}
