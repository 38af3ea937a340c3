/*
 * The agent's OVN side, from configuration to answers: find this chassis' name (configured, or
 * external_ids:system-id of the local Open_vSwitch database), keep the Southbound monitored with the lookup
 * index, keep the liveness keys current, and answer lookups from the index.
 *
 * Start-up never waits on a database: the agent listens at once, answers 503 until the index is first
 * loaded, and reports why on /readyz. Once loaded the index keeps answering through Southbound outages
 * (answers are then flagged as from a cache, so they do not make /readyz true) while /readyz says the
 * Southbound is disconnected.
 */
import {
  type InstanceIdentity,
  type InstanceResolver,
  LogEvent,
  type Logger,
  type LookupQuery,
  MetadataError,
  type Registry,
} from '@nmp/common';
import { LocalOvs, localOvsConnection, OvnSouthbound, southboundConnection } from '@nmp/ovn';
import { MetadataLiveness } from './liveness.js';
import type { OvnResolverConfig } from './options.js';
import { PortBindingIndex } from './port-index.js';

export interface OvnServiceOptions {
  readonly config: OvnResolverConfig;
  readonly logger: Logger;
  /** Liveness keys in Chassis_Private (default true). */
  readonly liveness?: boolean;
  /** For tests: reconnection back-off, the liveness delay's random source. */
  readonly random?: () => number;
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
}

export class OvnMetadataService {
  readonly resolver: InstanceResolver;
  readonly #o: OvnServiceOptions;
  readonly #log: Logger;
  #localOvs: LocalOvs | undefined;
  #southbound: OvnSouthbound<PortBindingIndex> | undefined;
  #liveness: MetadataLiveness | undefined;
  #startError: string | undefined;
  #closed = false;
  #started: Promise<void> | undefined;

  constructor(options: OvnServiceOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.resolver = new OvnResolver(this);
  }

  get southbound(): OvnSouthbound<PortBindingIndex> | undefined {
    return this.#southbound;
  }

  get liveness(): MetadataLiveness | undefined {
    return this.#liveness;
  }

  /** Begin (in the background): chassis name, then the Southbound. Resolves when the Southbound started. */
  start(): Promise<void> {
    this.#started ??= this.#start().catch((err: unknown) => {
      this.#startError = err instanceof Error ? err.message : String(err);
      this.#log.error(
        { code: LogEvent.MDA_OVN_START_FAILED, err: this.#startError },
        'the OVN resolver cannot start',
      );
    });
    return this.#started;
  }

  async #start(): Promise<void> {
    const c = this.#o.config;
    let chassis: string | undefined = c.ovnChassisName;
    if (chassis === '') {
      const ovs = new LocalOvs({ ...localOvsConnection(c), logger: this.#log });
      this.#localOvs = ovs;
      ovs.start();
      chassis = await ovs.chassisName({
        stopped: () => this.#closed,
        onWait: (why) => {
          this.#startError = why;
        },
      });
      // The name is all the agent needs from the local database.
      await ovs.close();
      this.#localOvs = undefined;
    }
    if (this.#closed || chassis === undefined) return;
    this.#startError = undefined;
    const sb = new OvnSouthbound({
      ...southboundConnection(c),
      chassisName: chassis,
      scope: c.ovnLookupScope,
      index: new PortBindingIndex(c.ovnLookupScope),
      logger: this.#log,
      ...(this.#o.backoffMinMs !== undefined ? { backoffMinMs: this.#o.backoffMinMs } : {}),
      ...(this.#o.backoffMaxMs !== undefined ? { backoffMaxMs: this.#o.backoffMaxMs } : {}),
    });
    this.#southbound = sb;
    this.#log.info(
      {
        code: LogEvent.MDA_OVN_STARTING,
        chassis,
        southbound: sb.client.remotes.map((r) => r.text),
        scope: c.ovnLookupScope,
      },
      'OVN resolver: monitoring the Southbound',
    );
    sb.start();
    if (this.#o.liveness !== false) {
      this.#liveness = new MetadataLiveness({
        southbound: sb,
        agentDownTime: c.agentDownTime,
        transactionTimeoutMs: c.ovnTransactionTimeout * 1000,
        logger: this.#log,
        ...(this.#o.random ? { random: this.#o.random } : {}),
      });
      this.#liveness.start();
    }
  }

  /** Why lookups are not current (for /readyz), or undefined. */
  health(): string | undefined {
    if (this.#closed) return 'stopping';
    const sb = this.#southbound;
    if (!sb) return this.#startError ?? 'starting: reading the chassis name';
    return sb.health();
  }

  /** nmp_ovn_* metrics, read at scrape time. */
  registerMetrics(registry: Registry): void {
    const sb = () => this.#southbound;
    registry.gauge({
      name: 'nmp_ovn_southbound_connected',
      help: '1 while the Southbound is connected and the index current, else 0 (lookups then use the last copy)',
      value: () => (sb()?.connected ? 1 : 0),
    });
    registry.counter({
      name: 'nmp_ovn_southbound_connects_total',
      help: 'Southbound sessions established',
      value: () => sb()?.client.stats.connects ?? 0,
    });
    registry.counter({
      name: 'nmp_ovn_southbound_disconnects_total',
      help: 'Southbound sessions lost after being established',
      value: () => sb()?.client.stats.disconnects ?? 0,
    });
    registry.counter({
      name: 'nmp_ovn_southbound_requests_total',
      help: 'Requests sent to the Southbound (handshakes, condition changes, liveness writes; echo probes aside); lookups send none',
      value: () => sb()?.client.stats.requests ?? 0,
    });
    registry.gauge({
      name: 'nmp_ovn_port_bindings_indexed',
      help: 'Port_Bindings in the lookup index',
      value: () => sb()?.index?.size ?? 0,
    });
    registry.counter({
      name: 'nmp_ovn_index_updates_total',
      help: 'Port_Bindings added to or removed from the lookup index',
      value: () => sb()?.index?.updates ?? 0,
    });
    registry.counter({
      name: 'nmp_ovn_liveness_writes_total',
      help: 'Liveness writes to Chassis_Private (neutron:ovn-metadata-sb-cfg)',
      value: () => this.#liveness?.stats.writes ?? 0,
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#liveness?.close();
    await Promise.allSettled([this.#localOvs?.close(), this.#southbound?.close()]);
  }
}

/** The InstanceResolver the handler calls: a lookup in the index, nothing else. */
export class OvnResolver implements InstanceResolver {
  readonly #service: OvnMetadataService;

  constructor(service: OvnMetadataService) {
    this.#service = service;
  }

  resolve(query: LookupQuery): Promise<InstanceIdentity> {
    const sb = this.#service.southbound;
    if (!sb?.index || !sb.synced) {
      return Promise.reject(
        new MetadataError('MDA_ERR_RESOLVER_UNAVAILABLE', {
          resolver: 'ovn',
          reason: this.#service.health() ?? 'the Southbound index is not loaded yet',
        }),
      );
    }
    const stale = !sb.connected;
    try {
      const identity = sb.index.lookup(query);
      return Promise.resolve(stale ? { ...identity, cached: true } : identity);
    } catch (err) {
      if (stale && err instanceof MetadataError)
        return Promise.reject(new MetadataError(err.code, { ...err.details, cached: true, stale: true }));
      return Promise.reject(err);
    }
  }

  close(): Promise<void> {
    return this.#service.close();
  }
}
