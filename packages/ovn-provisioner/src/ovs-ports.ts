/*
 * The metadata port's OVS side: the veth's outer end as a port of the integration bridge with
 * external_ids:iface-id = the metadata Port_Binding's logical port, which is what makes ovn-controller bind
 * the localport here.
 *
 * Written with our OVSDB client on the local Open_vSwitch database, not with ovs-vsctl: the monitored
 * replica already says which bridges, ports and iface-ids exist (no process and no round trip to look),
 * and adding the Interface, the Port and the bridge's reference to it is one atomic transaction (ovs-vsctl
 * is a process per call, ~10 ms each and one database round trip more per check). It also works with the
 * tcp: ovsdb_connection neutron allows. Port and Interface rows are not root rows: removing the bridge's
 * reference deletes them.
 */
import type { LocalOvs } from '@nmp/ovn';
import { mapOf, namedUuid, type Row, setOf, uuidAtom } from '@nmp/ovsdb';

export class OvsPorts {
  readonly #ovs: LocalOvs;
  readonly #timeoutMs: number;

  constructor(ovs: LocalOvs, timeoutMs: number) {
    this.#ovs = ovs;
    this.#timeoutMs = timeoutMs;
  }

  #rows(table: string): Iterable<Row> {
    return this.#ovs.replica.table(table).values();
  }

  bridge(name: string): Row | undefined {
    for (const b of this.#rows('Bridge')) if (b.name === name) return b;
    return undefined;
  }

  /** datapath_type of a bridge ('' = system, 'netdev' = userspace). */
  datapathType(bridge: string): string | undefined {
    const b = this.bridge(bridge);
    return b === undefined ? undefined : String(b.datapath_type);
  }

  /** Bridges that have a port called `port`, with that port's row. */
  #holders(port: string): { bridge: Row; port: Row }[] {
    const ports = this.#ovs.replica.table('Port');
    const out: { bridge: Row; port: Row }[] = [];
    for (const b of this.#rows('Bridge')) {
      for (const uuid of b.ports as string[]) {
        const p = ports.get(uuid);
        if (p?.name === port) out.push({ bridge: b, port: p });
      }
    }
    return out;
  }

  /** iface-id of the interface called `name`, if any. */
  ifaceId(name: string): string | undefined {
    for (const i of this.#rows('Interface')) {
      if (i.name !== name) continue;
      const v = (i.external_ids as ReadonlyMap<string, string>).get('iface-id');
      return typeof v === 'string' ? v : undefined;
    }
    return undefined;
  }

  /** Names of the interfaces on `bridge` with their iface-id. */
  interfacesOn(bridge: string): { name: string; ifaceId: string | undefined }[] {
    const b = this.bridge(bridge);
    if (!b) return [];
    const ports = this.#ovs.replica.table('Port');
    const ifaces = this.#ovs.replica.table('Interface');
    const out: { name: string; ifaceId: string | undefined }[] = [];
    for (const pu of b.ports as string[]) {
      for (const iu of (ports.get(pu)?.interfaces as string[] | undefined) ?? []) {
        const i = ifaces.get(iu);
        if (!i) continue;
        const id = (i.external_ids as ReadonlyMap<string, string>).get('iface-id');
        out.push({ name: String(i.name), ifaceId: typeof id === 'string' ? id : undefined });
      }
    }
    return out;
  }

  /**
   * Make `port` a port of `bridge` (only of it: a copy on another bridge, left by a migration from ML2/OVS,
   * is removed, as neutron does) whose interface has iface-id = `ifaceId`. Returns what it did.
   */
  async ensure(bridge: string, port: string, ifaceId: string): Promise<'unchanged' | 'added' | 'updated'> {
    const target = this.bridge(bridge);
    if (!target) throw new Error(`bridge ${bridge} is not in the local Open_vSwitch database`);
    const ops: object[] = [];
    let here: Row | undefined;
    for (const h of this.#holders(port)) {
      if (h.bridge._uuid === target._uuid) here = h.port;
      else
        ops.push({
          op: 'mutate',
          table: 'Bridge',
          where: [['_uuid', '==', uuidAtom(h.bridge._uuid)]],
          mutations: [['ports', 'delete', setOf([uuidAtom(h.port._uuid)])]],
        });
    }
    let action: 'unchanged' | 'added' | 'updated' = 'unchanged';
    if (here === undefined) {
      action = 'added';
      ops.push(
        {
          op: 'insert',
          table: 'Interface',
          'uuid-name': 'iface',
          row: { name: port, external_ids: mapOf({ 'iface-id': ifaceId }) },
        },
        {
          op: 'insert',
          table: 'Port',
          'uuid-name': 'port',
          row: { name: port, interfaces: namedUuid('iface') },
        },
        {
          op: 'mutate',
          table: 'Bridge',
          where: [['_uuid', '==', uuidAtom(target._uuid)]],
          mutations: [['ports', 'insert', setOf([namedUuid('port')])]],
        },
      );
    } else if (this.ifaceId(port) !== ifaceId) {
      action = 'updated';
      ops.push({
        op: 'mutate',
        table: 'Interface',
        where: [['name', '==', port]],
        mutations: [
          ['external_ids', 'delete', setOf(['iface-id'])],
          ['external_ids', 'insert', mapOf({ 'iface-id': ifaceId })],
        ],
      });
    } else if (ops.length > 0) action = 'updated';
    if (ops.length > 0) await this.#ovs.client.transact(ops, this.#timeoutMs);
    return action;
  }

  /** Remove `port` from every bridge that has it. */
  async remove(port: string): Promise<boolean> {
    const ops = this.#holders(port).map((h) => ({
      op: 'mutate',
      table: 'Bridge',
      where: [['_uuid', '==', uuidAtom(h.bridge._uuid)]],
      mutations: [['ports', 'delete', setOf([uuidAtom(h.port._uuid)])]],
    }));
    if (ops.length === 0) return false;
    await this.#ovs.client.transact(ops, this.#timeoutMs);
    return true;
  }
}
