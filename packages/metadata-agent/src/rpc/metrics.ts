/*
 * The RPC resolver's metrics, added to the agent's registry (AgentMetrics.registry) when resolver = rpc:
 *
 *   nmp_rpc_call_duration_seconds{method,outcome}  get_ports / report_state calls, by outcome (answered,
 *                                                  remote_error, timeout, unavailable)
 *   nmp_rpc_lookup_batch_size{lookup}              addresses (lookup="address") or routers ("router") per
 *                                                  get_ports call of the port lookups (rpc_lookup_batch_max);
 *                                                  _sum / _count = lookups per call
 *   nmp_rpc_calls_outstanding                      calls waiting for their reply
 *   nmp_rpc_connected                              1 while connected to a RabbitMQ host
 *   nmp_rpc_reconnects_total                       connections made after the first
 *   nmp_rpc_connection_failures_total              connection attempts (one host each) that failed
 *   nmp_rpc_disconnects_total                      connections lost while in use
 *   nmp_rpc_late_replies_total                     replies that came after their call's deadline
 *   nmp_state_reports_total{result}                state reports that reached neutron-server / failed
 *   nmp_state_report_last_success_timestamp_seconds
 *
 * A call costs one histogram observation on a child looked up once; the rest is read when scraped.
 */
import type { Histogram, Registry } from '@nmp/common';
import type { BrokerStats } from './broker-connection.js';
import type { CallOutcome, RpcClientStats, RpcObserver } from './rpc-client.js';
import type { StateReporterStats } from './state-reporter.js';

/** Seconds: replies take milliseconds; the deadline is a few seconds; report calls up to report_interval. */
export const RPC_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** Items per lookup call: 1 when quiet, up to rpc_lookup_batch_max (default 1, at most 1000). */
export const BATCH_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000];

const METHODS = ['get_ports', 'report_state'] as const;
const OUTCOMES: readonly CallOutcome[] = ['answered', 'remote_error', 'timeout', 'unavailable'];

export interface RpcMetricSources {
  readonly broker: () => BrokerStats;
  readonly client: () => RpcClientStats;
  readonly reports?: () => StateReporterStats;
}

export class RpcMetrics implements RpcObserver {
  readonly #children = new Map<string, Histogram>();
  readonly #batches = new Map<string, Histogram>();
  #sources: RpcMetricSources | undefined;

  constructor(registry: Registry) {
    const calls = registry.histogram({
      name: 'nmp_rpc_call_duration_seconds',
      help: 'RPC calls to neutron-server over RabbitMQ, from publish to reply (or failure), by method and outcome (answered, remote_error, timeout, unavailable)',
      labelNames: ['method', 'outcome'],
      buckets: RPC_BUCKETS,
    });
    for (const m of METHODS) for (const o of OUTCOMES) this.#children.set(`${m}|${o}`, calls.labels(m, o));
    const batches = registry.histogram({
      name: 'nmp_rpc_lookup_batch_size',
      help: 'Addresses (lookup="address") or routers (lookup="router") one get_ports call of the port lookups carried: lookups for a network arriving while a call for it is in flight go out together (rpc_lookup_batch_max)',
      labelNames: ['lookup'],
      buckets: BATCH_BUCKETS,
    });
    for (const l of ['address', 'router']) this.#batches.set(l, batches.labels(l));
    const s = () => this.#sources;
    registry.gauge({
      name: 'nmp_rpc_calls_outstanding',
      help: 'RPC calls waiting for their reply',
      value: () => s()?.client().outstanding ?? 0,
    });
    registry.gauge({
      name: 'nmp_rpc_connected',
      help: '1 while the agent is connected to a RabbitMQ host of transport_url, else 0',
      value: () => (s()?.broker().connected ? 1 : 0),
    });
    registry.counter({
      name: 'nmp_rpc_reconnects_total',
      help: 'Connections to RabbitMQ made after the first one (broker restarts, network cuts, fail-over)',
      value: () => s()?.broker().reconnects ?? 0,
    });
    registry.counter({
      name: 'nmp_rpc_connection_failures_total',
      help: 'Attempts to connect to a RabbitMQ host that failed (refused, timeout, TLS, credentials)',
      value: () => s()?.broker().connectFailures ?? 0,
    });
    registry.counter({
      name: 'nmp_rpc_disconnects_total',
      help: 'Connections to RabbitMQ lost while in use',
      value: () => s()?.broker().disconnects ?? 0,
    });
    registry.counter({
      name: 'nmp_rpc_late_replies_total',
      help: 'Replies that arrived after their call had given up (rpc_lookup_timeout too short for this neutron-server?)',
      value: () => s()?.client().lateReplies ?? 0,
    });
    const reports = registry.counter({
      name: 'nmp_state_reports_total',
      help: 'State reports to neutron-server (report_state), by result: success (taken by neutron-server or the broker) or failure',
      labelNames: ['result'],
      collect: () => {
        const r = s()?.reports?.();
        // The reporter keeps the totals; bring the series up to them.
        ok.inc(Math.max(0, (r?.sent ?? 0) - ok.value));
        failed.inc(Math.max(0, (r?.failures ?? 0) - failed.value));
      },
    });
    const ok = reports.labels('success');
    const failed = reports.labels('failure');
    registry.gauge({
      name: 'nmp_state_report_last_success_timestamp_seconds',
      help: 'When a state report last reached neutron-server (0: never)',
      value: () => (s()?.reports?.().lastSuccess ?? 0) / 1000,
    });
  }

  setSources(sources: RpcMetricSources): void {
    this.#sources = sources;
  }

  rpcCall(method: string, outcome: CallOutcome, seconds: number): void {
    this.#children.get(`${method}|${outcome}`)?.observe(seconds);
  }

  lookupBatch(lane: string, size: number): void {
    this.#batches.get(lane)?.observe(size);
  }
}
