/*
 * State reports, so that `openstack network agent list` shows this node's Metadata agent alive, sent as
 * neutron's UnixDomainMetadataProxy and PluginReportStateAPI send them (reference.md §14): `report_state`
 * on topic q-reports-plugin, version 1.2, no namespace, kwargs
 *
 *   agent_state = {"agent_state": {binary, host, topic: "N/A", configurations, start_flag, agent_type:
 *                  "Metadata agent", uuid}},  time = "YYYY-MM-DDTHH:MM:SS.ffffff" (UTC)
 *
 * The first report, and every one until a report succeeds, is a call carrying start_flag (timeout
 * report_interval, as neutron's); after that, casts. One report every report_interval from the first
 * (fixed rate; a report still in flight when the next is due makes that one skip). A failed report is
 * logged (once per streak) and counted, and the next interval tries again; the broker connection
 * reconnecting underneath means reports go on after a broker restart without anything done here.
 */
import { randomUUID } from 'node:crypto';
import { LogEvent, type Logger, MetadataError } from '@nmp/common';
import type { RpcRequest } from './envelope.js';
import type { RpcClient } from './rpc-client.js';

/** neutron_lib topics.REPORTS. */
export const REPORTS_TOPIC = 'q-reports-plugin';
/** PluginReportStateAPI's version (Zed; later servers still accept 1.2). */
export const REPORT_STATE_VERSION = '1.2';
/** neutron_lib constants.AGENT_TYPE_METADATA. */
export const AGENT_TYPE_METADATA = 'Metadata agent';

export interface StateReporterSettings {
  readonly intervalMs: number;
  readonly host: string;
  readonly binary: string;
  readonly configurations: Readonly<Record<string, unknown>>;
  readonly logHeartbeats: boolean;
}

export interface StateReporterStats {
  readonly sent: number;
  readonly failures: number;
  /** Epoch ms of the last report that reached neutron-server (0 = none yet). */
  readonly lastSuccess: number;
}

/** neutron_lib ISO8601_TIME_FORMAT: '%Y-%m-%dT%H:%M:%S.%f' of utcnow(). */
export function reportTime(d: Date): string {
  return `${d.toISOString().slice(0, 23)}000`;
}

export class StateReporter {
  readonly #rpc: RpcClient;
  readonly #s: StateReporterSettings;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #startFlag = true;
  #inFlight = false;
  #failing = false;
  #sent = 0;
  #failures = 0;
  #lastSuccess = 0;
  #stopped = false;

  constructor(rpc: RpcClient, settings: StateReporterSettings, log: Logger) {
    this.#rpc = rpc;
    this.#s = settings;
    this.#log = log;
  }

  get stats(): StateReporterStats {
    return { sent: this.#sent, failures: this.#failures, lastSuccess: this.#lastSuccess };
  }

  /** The state neutron's agent reports (what the next report would carry, without uuid). */
  state(startFlag: boolean): Record<string, unknown> {
    return {
      binary: this.#s.binary,
      host: this.#s.host,
      topic: 'N/A',
      configurations: this.#s.configurations,
      ...(startFlag ? { start_flag: true } : {}),
      agent_type: AGENT_TYPE_METADATA,
    };
  }

  /** First report now, then every interval. No-op when the interval is 0. */
  start(): void {
    if (this.#s.intervalMs <= 0 || this.#timer || this.#stopped) return;
    void this.#report();
    this.#timer = setInterval(() => void this.#report(), this.#s.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #report(): Promise<void> {
    if (this.#inFlight || this.#stopped) return;
    this.#inFlight = true;
    const useCall = this.#startFlag;
    const agentState = { ...this.state(useCall), uuid: randomUUID() };
    const request: RpcRequest = {
      method: 'report_state',
      args: { agent_state: { agent_state: agentState }, time: reportTime(new Date()) },
      version: REPORT_STATE_VERSION,
    };
    try {
      let status: unknown;
      if (useCall) status = await this.#rpc.call(REPORTS_TOPIC, request, Date.now() + this.#s.intervalMs);
      else await this.#rpc.cast(REPORTS_TOPIC, request);
      this.#sent++;
      this.#lastSuccess = Date.now();
      this.#startFlag = false;
      const fields = {
        code: LogEvent.MDA_RPC_STATE_REPORTED,
        kind: useCall ? 'call' : 'cast',
        uuid: agentState.uuid,
        ...(typeof status === 'string' ? { status } : {}),
      };
      if (this.#failing) {
        this.#failing = false;
        this.#log.info(fields, 'state reported to neutron-server again after failures');
      } else if (useCall) {
        this.#log.info(
          fields,
          `registered with neutron-server as '${AGENT_TYPE_METADATA}' on host ${this.#s.host}`,
        );
      } else if (this.#s.logHeartbeats) {
        this.#log.info(fields, 'state reported');
      } else {
        this.#log.debug(fields, 'state reported');
      }
    } catch (err) {
      this.#failures++;
      const fields = {
        code: LogEvent.MDA_RPC_STATE_REPORT_FAILED,
        kind: useCall ? 'call' : 'cast',
        ...describeFailure(err),
        retryInS: this.#s.intervalMs / 1000,
      };
      if (!this.#failing) {
        this.#failing = true;
        this.#log.warn(fields, 'state report to neutron-server failed; retrying every report_interval');
      } else {
        this.#log.debug(fields, 'state report failed again');
      }
    } finally {
      this.#inFlight = false;
    }
  }
}

function describeFailure(err: unknown): Record<string, unknown> {
  if (err instanceof MetadataError) {
    const d = err.details as { reason?: unknown; remoteClass?: unknown; remoteMessage?: unknown };
    return {
      cause: err.code,
      error: String(
        d.reason ?? (d.remoteClass ? `${String(d.remoteClass)}: ${String(d.remoteMessage)}` : err.code),
      ),
    };
  }
  return { error: err instanceof Error ? err.message : String(err) };
}
