/*
 * The local Open_vSwitch database ([ovs] ovsdb_connection), kept monitored: this chassis' name
 * (external_ids:system-id, which ovn-controller registers the chassis under) and the integration bridge
 * (external_ids:ovn-bridge, br-int when unset), as neutron's agent reads them; with `full`, also the bridges,
 * ports and interfaces the provisioner plugs the metadata ports into.
 */
import { LogEvent, type Logger } from '@nmp/common';
import { OvsdbClient, type Replica, type Row } from '@nmp/ovsdb';

export const DEFAULT_OVN_BRIDGE = 'br-int';

export interface LocalOvsOptions {
  readonly remote: string;
  readonly logger: Logger;
  /** Also replicate Bridge, Port and Interface (the provisioner). */
  readonly full?: boolean;
  readonly timeoutMs?: number;
}

export interface ChassisWait {
  /** Give up (resolve undefined) when this turns true. */
  readonly stopped?: () => boolean;
  /** Why the name is not known yet, at each warning. */
  readonly onWait?: (why: string) => void;
}

export class LocalOvs {
  readonly client: OvsdbClient;
  readonly replica: Replica;
  readonly #log: Logger;

  constructor(options: LocalOvsOptions) {
    this.#log = options.logger;
    this.client = new OvsdbClient({
      remotes: options.remote,
      database: 'Open_vSwitch',
      logger: options.logger.child({ ovsdb: 'Open_vSwitch' }),
      // A local server: no cluster, and a short probe is cheap.
      probeIntervalMs: 5000,
      requestTimeoutMs: options.timeoutMs ?? 30_000,
    });
    this.replica = this.client.monitor({
      Open_vSwitch: {
        columns: ['external_ids', 'bridges'],
        mapKeys: { external_ids: ['system-id', 'ovn-bridge'] },
      },
      ...(options.full
        ? {
            Bridge: { columns: ['name', 'ports', 'datapath_type'] },
            Port: { columns: ['name', 'interfaces'] },
            Interface: {
              columns: ['name', 'type', 'external_ids', 'ofport'],
              mapKeys: { external_ids: ['iface-id'] },
            },
          }
        : {}),
    });
  }

  start(): void {
    this.client.start();
  }

  close(): Promise<void> {
    return this.client.close();
  }

  #root(): Row | undefined {
    return this.replica.table('Open_vSwitch').values().next().value;
  }

  /** external_ids:system-id, once the database has it. */
  get systemId(): string | undefined {
    const v = (this.#root()?.external_ids as ReadonlyMap<string, string> | undefined)?.get('system-id');
    return typeof v === 'string' && v !== '' ? v : undefined;
  }

  /** external_ids:ovn-bridge, or br-int. */
  get ovnBridge(): string {
    const v = (this.#root()?.external_ids as ReadonlyMap<string, string> | undefined)?.get('ovn-bridge');
    return typeof v === 'string' && v !== '' ? v : DEFAULT_OVN_BRIDGE;
  }

  /** Wait until the chassis name is known (the database answers and has system-id). */
  async waitForSystemId(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const id = this.systemId;
      if (id !== undefined) return id;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          this.client.connected
            ? 'the local Open_vSwitch database has no external_ids:system-id (is ovn-controller configured?)'
            : `cannot reach the local Open_vSwitch database (${this.client.stats.lastError ?? 'no answer'})`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 1000));
        const stop = this.replica.onChange(done);
        function done() {
          clearTimeout(timer);
          stop();
          resolve();
        }
      });
    }
  }

  /**
   * This chassis' name, waited for as long as it takes (a warning every 30 s while the database cannot be
   * reached or has no system-id yet; `onWait` hears why); undefined once `stopped()` says to give up.
   */
  chassisName(): Promise<string>;
  chassisName(o: ChassisWait): Promise<string | undefined>;
  async chassisName(o: ChassisWait = {}): Promise<string | undefined> {
    for (;;) {
      try {
        return await this.waitForSystemId(30_000);
      } catch (err) {
        if (o.stopped?.()) return undefined;
        const why = (err as Error).message;
        o.onWait?.(why);
        this.#log.warn({ code: LogEvent.MDA_OVN_NO_CHASSIS, err: why }, 'waiting for the chassis name');
      }
    }
  }
}
