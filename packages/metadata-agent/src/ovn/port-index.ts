/*
 * The lookup index over the Southbound replica: (network, IP) and (network, MAC) -> Port_Bindings, kept
 * current from the replica's change batches, so a lookup is two Map reads and touches no database.
 *
 * What counts, as in neutron's get_network_port_bindings_by_ip (the row readers are @nmp/ovn's):
 * - the network of a Port_Binding is its Datapath_Binding's (networkOfDatapath);
 * - its addresses are the `mac` column's (addressesOf: we read every entry, neutron only the first);
 * - it must be bound: in scope 'all' to any chassis, as neutron; in scope 'chassis' (our default) to this
 *   chassis, or this chassis must be among its additional_chassis (a live migration's target);
 * - the instance and project are external_ids neutron:device_id and neutron:project_id; the choice among
 *   the candidates is pickPort's (one with a device id: found; none or several: 404 with the usual codes).
 */
import type { InstanceIdentity, LookupQuery, NeutronPort } from '@nmp/common';
import {
  addressesOf,
  EXT_DEVICE_ID,
  EXT_PROJECT_ID,
  externalId,
  type LookupScope,
  networkOfDatapath,
  type SouthboundIndex,
} from '@nmp/ovn';
import type { Row, RowChange } from '@nmp/ovsdb';
import { pickPort } from '../resolver/port-match.js';

/** What a Port_Binding contributes to the index. */
export interface IndexedPort {
  readonly uuid: string;
  readonly logicalPort: string;
  readonly datapath: string;
  readonly network: string;
  readonly deviceId: string;
  readonly projectId: string;
  readonly macs: readonly string[];
  readonly ips: readonly string[];
}

export class PortBindingIndex implements SouthboundIndex {
  readonly scope: LookupScope;
  /** Datapath_Binding uuid -> network id. */
  readonly #networks = new Map<string, string>();
  /** Datapath_Binding uuid -> Port_Binding rows on it (every row seen, indexed or not). */
  readonly #byDatapath = new Map<string, Map<string, Row>>();
  /** Port_Binding uuid -> what is indexed for it. */
  readonly #ports = new Map<string, IndexedPort>();
  /**
   * "network\nip" and "network\nmac:MAC" -> the Port_Binding uuid, or the uuids when several share the key
   * (rare: a duplicate is the ambiguous case). A string, not a Set, for the usual one: at 100,000 ports the
   * difference is tens of megabytes and a good part of the first load's time.
   */
  readonly #keys = new Map<string, string | string[]>();
  #chassis: string | undefined;
  /** Index changes applied (for metrics). */
  updates = 0;

  constructor(scope: LookupScope) {
    this.scope = scope;
  }

  /** Port_Bindings in the index now. */
  get size(): number {
    return this.#ports.size;
  }

  /** The uuid of this chassis' Chassis row (scope 'chassis' counts only ports bound to it). */
  get chassis(): string | undefined {
    return this.#chassis;
  }

  setChassis(uuid: string | undefined): void {
    if (uuid === this.#chassis) return;
    this.#chassis = uuid;
    if (this.scope === 'chassis') this.#reindexAll();
  }

  /** Apply a batch of replica changes (Datapath_Binding and Port_Binding; other tables are ignored). */
  apply(changes: readonly RowChange[]): void {
    // Datapaths first: ports of the same batch may refer to a new one.
    for (const ch of changes) {
      if (ch.table !== 'Datapath_Binding') continue;
      const before = this.#networks.get(ch.uuid);
      const after = networkOfDatapath(ch.new);
      if (after === undefined) this.#networks.delete(ch.uuid);
      else this.#networks.set(ch.uuid, after);
      if (before !== after)
        for (const row of this.#byDatapath.get(ch.uuid)?.values() ?? []) this.#reindex(row);
    }
    for (const ch of changes) {
      if (ch.table !== 'Port_Binding') continue;
      if (ch.old) {
        this.#unindex(ch.uuid);
        const dp = this.#byDatapath.get(ch.old.datapath as string);
        dp?.delete(ch.uuid);
        if (dp?.size === 0) this.#byDatapath.delete(ch.old.datapath as string);
      }
      if (ch.new) {
        const dpUuid = ch.new.datapath as string;
        let dp = this.#byDatapath.get(dpUuid);
        if (!dp) {
          dp = new Map();
          this.#byDatapath.set(dpUuid, dp);
        }
        dp.set(ch.uuid, ch.new);
        this.#index(ch.new);
      }
    }
  }

  /** The instance behind a network-mode query (router queries have no meaning in OVN: not found). */
  lookup(query: LookupQuery): InstanceIdentity {
    const key = query.mac !== undefined ? `${query.id}\nmac:${query.mac}` : `${query.id}\n${query.ip}`;
    const hit = query.mode === 'network' ? this.#keys.get(key) : undefined;
    const candidates: NeutronPort[] = [];
    if (hit !== undefined) {
      for (const uuid of typeof hit === 'string' ? [hit] : hit) {
        const p = this.#ports.get(uuid)!;
        candidates.push({
          id: p.logicalPort,
          network_id: p.network,
          device_id: p.deviceId,
          project_id: p.projectId,
        });
      }
    }
    return pickPort(candidates, query);
  }

  /** The indexed entry of a Port_Binding (tests, diagnostics). */
  port(uuid: string): IndexedPort | undefined {
    return this.#ports.get(uuid);
  }

  #eligible(row: Row): boolean {
    const chassis = row.chassis;
    if (!Array.isArray(chassis)) return false;
    if (this.scope === 'all') return chassis.length > 0;
    const mine = this.#chassis;
    if (mine === undefined) return false;
    if (chassis.includes(mine)) return true;
    const extra = row.additional_chassis;
    return Array.isArray(extra) && extra.includes(mine);
  }

  #index(row: Row): void {
    const network = this.#networks.get(row.datapath as string);
    if (network === undefined || !this.#eligible(row)) return;
    const { macs, ips } = addressesOf(row.mac);
    if (macs.length === 0) return;
    const port: IndexedPort = {
      uuid: row._uuid,
      logicalPort: typeof row.logical_port === 'string' ? row.logical_port : '',
      datapath: row.datapath as string,
      network,
      deviceId: externalId(row, EXT_DEVICE_ID) ?? '',
      projectId: externalId(row, EXT_PROJECT_ID) ?? '',
      macs,
      ips,
    };
    this.#ports.set(row._uuid, port);
    for (const ip of ips) this.#addKey(`${network}\n${ip}`, row._uuid);
    for (const m of macs) this.#addKey(`${network}\nmac:${m}`, row._uuid);
    this.updates++;
  }

  #addKey(key: string, uuid: string): void {
    const hit = this.#keys.get(key);
    if (hit === undefined) this.#keys.set(key, uuid);
    else if (typeof hit === 'string') {
      if (hit !== uuid) this.#keys.set(key, [hit, uuid]);
    } else if (!hit.includes(uuid)) hit.push(uuid);
  }

  #removeKey(key: string, uuid: string): void {
    const hit = this.#keys.get(key);
    if (hit === undefined) return;
    if (typeof hit === 'string') {
      if (hit === uuid) this.#keys.delete(key);
      return;
    }
    const rest = hit.filter((u) => u !== uuid);
    if (rest.length === 0) this.#keys.delete(key);
    else this.#keys.set(key, rest.length === 1 ? rest[0]! : rest);
  }

  #unindex(uuid: string): void {
    const port = this.#ports.get(uuid);
    if (!port) return;
    this.#ports.delete(uuid);
    for (const ip of port.ips) this.#removeKey(`${port.network}\n${ip}`, uuid);
    for (const m of port.macs) this.#removeKey(`${port.network}\nmac:${m}`, uuid);
    this.updates++;
  }

  #reindex(row: Row): void {
    this.#unindex(row._uuid);
    this.#index(row);
  }

  #reindexAll(): void {
    for (const rows of this.#byDatapath.values()) for (const row of rows.values()) this.#reindex(row);
  }
}
