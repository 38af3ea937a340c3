/*
 * The agent's and the provisioner's view of the OVN Southbound: one monitored connection and its replica,
 * and, for the agent, an index kept current from it (its lookup index: SouthboundIndex).
 *
 * Monitored, and why:
 *   Chassis          this chassis' row only (its uuid is what Port_Binding.chassis refers to)
 *   Chassis_Private  this chassis' row only (the liveness keys are written there)
 *   SB_Global        nb_cfg (liveness follows it)
 *   Datapath_Binding external_ids name/name2 (network of a datapath)
 *   Port_Binding     scope 'chassis': rows bound to this chassis (or to it as an additional chassis, during
 *                    a live migration), plus, for provisioning, every localport (the metadata ports);
 *                    scope 'all': every bound row, as neutron's unconditional monitor has them.
 * The server does the filtering (monitor_cond), so a chassis receives its own few hundred Port_Bindings
 * instead of every one in the cloud; until this chassis' row is known the Port_Binding condition matches
 * nothing (or only localports). Map columns keep only the keys used (a memory bound at 100k rows).
 */
import { LogEvent, type Logger } from '@nmp/common';
import type {
  OvsdbClient as Client,
  Condition,
  LeaderPreference,
  Replica,
  Row,
  RowChange,
  TlsFiles,
} from '@nmp/ovsdb';
import { OvsdbClient } from '@nmp/ovsdb';
import { EXT_CIDRS, EXT_DEVICE_ID, EXT_DEVICE_OWNER, EXT_MTU, EXT_PROJECT_ID } from './port-binding.js';

export const METADATA_ID_KEY = 'neutron:ovn-metadata-id';
export const METADATA_SB_CFG_KEY = 'neutron:ovn-metadata-sb-cfg';

/** Which Port_Bindings are monitored: those bound to this chassis, or every bound one. */
export type LookupScope = 'chassis' | 'all';

/** What keeps itself current from the replica's change batches (the agent's PortBindingIndex). */
export interface SouthboundIndex {
  apply(changes: readonly RowChange[]): void;
  /** The uuid of this chassis' Chassis row, when it appears or goes. */
  setChassis(uuid: string | undefined): void;
}

export interface SouthboundOptions<I extends SouthboundIndex = SouthboundIndex> {
  readonly remotes: string;
  readonly tls?: TlsFiles;
  readonly leader?: LeaderPreference;
  readonly probeIntervalMs: number;
  readonly chassisName: string;
  readonly scope: LookupScope;
  /** An index to keep current (the agent's lookups); none (absent or false) for the provisioner. */
  readonly index?: I | false;
  /** Also replicate every localport and the keys provisioning needs (the provisioner). */
  readonly localports?: boolean;
  readonly logger: Logger;
  /** For tests. */
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
}

export class OvnSouthbound<I extends SouthboundIndex = SouthboundIndex> {
  readonly client: Client;
  readonly replica: Replica;
  readonly index: I | undefined;
  readonly chassisName: string;
  readonly #o: SouthboundOptions<I>;
  readonly #log: Logger;
  #chassisUuid: string | undefined;
  /** JSON of the Port_Binding condition last asked for. */
  #where = '';
  #wherePending: Promise<void> = Promise.resolve();

  constructor(options: SouthboundOptions<I>) {
    this.#o = options;
    this.#log = options.logger;
    this.chassisName = options.chassisName;
    this.client = new OvsdbClient({
      remotes: options.remotes,
      database: 'OVN_Southbound',
      ...(options.tls ? { tls: options.tls } : {}),
      leader: options.leader ?? 'prefer',
      probeIntervalMs: options.probeIntervalMs,
      logger: options.logger.child({ ovsdb: 'OVN_Southbound' }),
      ...(options.backoffMinMs !== undefined ? { backoffMinMs: options.backoffMinMs } : {}),
      ...(options.backoffMaxMs !== undefined ? { backoffMaxMs: options.backoffMaxMs } : {}),
    });
    const keys = [
      EXT_DEVICE_ID,
      EXT_PROJECT_ID,
      ...(options.localports ? [EXT_CIDRS, EXT_DEVICE_OWNER, EXT_MTU] : []),
    ];
    this.replica = this.client.monitor({
      Chassis: { columns: ['name'], where: [['name', '==', options.chassisName]] },
      Chassis_Private: {
        columns: ['name', 'external_ids'],
        where: [['name', '==', options.chassisName]],
        mapKeys: { external_ids: [METADATA_ID_KEY, METADATA_SB_CFG_KEY] },
      },
      SB_Global: { columns: ['nb_cfg'] },
      Datapath_Binding: { columns: ['external_ids'], mapKeys: { external_ids: ['name', 'name2'] } },
      Port_Binding: {
        columns: ['logical_port', 'type', 'datapath', 'chassis', 'additional_chassis', 'mac', 'external_ids'],
        where: this.#portCondition(undefined, true),
        mapKeys: { external_ids: keys },
      },
    });
    this.index = options.index || undefined;
    this.replica.onChange((changes) => {
      this.index?.apply(changes);
      if (changes.some((c) => c.table === 'Chassis')) this.#chassisChanged();
    });
    this.replica.onProblem((p) =>
      this.#log.warn(
        { code: LogEvent.MDA_OVN_SB_DATA, problem: p.code, detail: p.message },
        'unusable data from the Southbound',
      ),
    );
    this.client.on('connected', () => this.#chassisChanged());
  }

  /** The uuid of this chassis' Chassis row, once ovn-controller registered it. */
  get chassisUuid(): string | undefined {
    return this.#chassisUuid;
  }

  /** Connected and synced: the replica is current. */
  get connected(): boolean {
    return this.client.connected;
  }

  /** Loaded at least once (it may be stale while reconnecting). */
  get synced(): boolean {
    return this.replica.synced;
  }

  /** Why lookups are not current, or undefined when they are. */
  health(): string | undefined {
    if (!this.client.connected) {
      const last = this.client.stats.lastError;
      return `Southbound ${this.replica.synced ? 'disconnected (answering from the last copy)' : 'not connected yet'}${last ? `: ${last}` : ''}`;
    }
    if (this.#chassisUuid === undefined && this.#o.scope === 'chassis')
      return `chassis ${this.chassisName} is not registered in the Southbound (is ovn-controller running?)`;
    return undefined;
  }

  /** This chassis' Chassis_Private row (or Chassis on a Southbound without that table). */
  get chassisPrivate(): Row | undefined {
    return this.replica.table('Chassis_Private').values().next().value;
  }

  get nbCfg(): number | undefined {
    const row: Row | undefined = this.replica.table('SB_Global').values().next().value;
    return typeof row?.nb_cfg === 'number' ? row.nb_cfg : undefined;
  }

  start(): void {
    this.client.start();
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /** Wait for pending condition changes (tests). */
  settled(): Promise<void> {
    return this.#wherePending;
  }

  #chassisChanged(): void {
    const row: Row | undefined = this.replica.table('Chassis').values().next().value;
    const uuid = row?._uuid;
    if (uuid !== this.#chassisUuid) {
      this.#log.info(
        { code: LogEvent.MDA_OVN_CHASSIS, chassis: this.chassisName, uuid: uuid ?? null },
        uuid ? 'this chassis is registered in the Southbound' : 'this chassis is not in the Southbound',
      );
      this.#chassisUuid = uuid;
      this.index?.setChassis(uuid);
    }
    if (this.#o.scope !== 'chassis' || !this.client.connected) return;
    const where = this.#portCondition(uuid, this.replica.has('Port_Binding', 'additional_chassis'));
    const json = JSON.stringify(where);
    if (json === this.#where) return;
    this.#where = json;
    this.#wherePending = this.#wherePending
      .then(() => this.client.setWhere(this.replica, 'Port_Binding', where))
      .catch((err: unknown) =>
        this.#log.warn(
          { code: LogEvent.MDA_OVN_SB_CONDITION, err: String(err) },
          'cannot change the Port_Binding condition',
        ),
      );
  }

  #portCondition(chassis: string | undefined, additional: boolean): Condition[] | undefined {
    if (this.#o.scope === 'all') {
      const bound: Condition = ['chassis', '!=', ['set', []]];
      return this.#o.localports ? [bound, ['type', '==', 'localport']] : [bound];
    }
    const out: Condition[] = [];
    if (chassis !== undefined) {
      out.push(['chassis', '==', ['uuid', chassis]]);
      if (additional) out.push(['additional_chassis', 'includes', ['uuid', chassis]]);
    }
    if (this.#o.localports) out.push(['type', '==', 'localport']);
    return out.length > 0 ? out : [false];
  }
}
