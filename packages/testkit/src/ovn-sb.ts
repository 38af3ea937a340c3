/*
 * Rows of an OVN Southbound database the way a neutron cloud has them (neutron writes the Northbound,
 * ovn-northd copies it to the Southbound, ovn-controller claims ports for its chassis), as transact
 * operations for tests that populate a real SB ovsdb-server directly:
 *
 *   Datapath_Binding  external_ids name=neutron-<network id>, name2=<network name>, logical-switch=<uuid>
 *   Port_Binding      logical_port=<neutron port id>, type "" (a VM) or "localport" (the metadata port,
 *                     device owner network:distributed, device id ovnmeta-<network id>), mac="MAC IP...",
 *                     external_ids neutron:device_id, neutron:project_id, neutron:cidrs, neutron:device_owner,
 *                     neutron:network_name, neutron:port_name, neutron:mtu; chassis set when bound
 *   Chassis           name=<system-id>, hostname, encaps (one geneve Encap)
 *   Chassis_Private   name=<system-id>, chassis -> Chassis (ovn-controller creates both)
 */
import { createHash, randomUUID } from 'node:crypto';

export interface SbPortSpec {
  /** Neutron port id (the logical port name). */
  readonly id: string;
  /** Row uuid reference of the Datapath_Binding (["uuid", x] or ["named-uuid", x]). */
  readonly datapath: readonly [string, string];
  readonly tunnelKey: number;
  readonly mac: string;
  readonly ips: readonly string[];
  /** "" for a VM port, "localport" for the metadata port, "external", ... */
  readonly type?: string;
  readonly deviceId?: string;
  readonly deviceOwner?: string;
  readonly projectId?: string;
  /** neutron:cidrs, e.g. "10.0.0.5/24 2001:db8::5/64". */
  readonly cidrs?: string;
  readonly networkId: string;
  readonly mtu?: number;
  /** Row uuid reference of the Chassis it is bound to. */
  readonly chassis?: readonly [string, string];
  readonly additionalChassis?: readonly (readonly [string, string])[];
  readonly uuidName?: string;
}

export const sbOps = {
  /** A Chassis (with its geneve Encap) and its Chassis_Private, as ovn-controller registers them. */
  chassis(name: string, options: { hostname?: string; ip?: string; uuidName?: string } = {}): object[] {
    const ref = options.uuidName ?? `ch_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
    const encap = `${ref}_encap`;
    // (type, ip) is unique among Encaps: derive a distinct test address from the name.
    const h = createHash('sha256').update(name).digest();
    const ip = options.ip ?? `10.${h[0]}.${h[1]}.${1 + (h[2]! % 254)}`;
    return [
      {
        op: 'insert',
        table: 'Encap',
        'uuid-name': encap,
        row: { type: 'geneve', ip, chassis_name: name, options: ['map', [['csum', 'true']]] },
      },
      {
        op: 'insert',
        table: 'Chassis',
        'uuid-name': ref,
        row: { name, hostname: options.hostname ?? name, encaps: ['named-uuid', encap] },
      },
      {
        op: 'insert',
        table: 'Chassis_Private',
        row: { name, chassis: ['named-uuid', ref] },
      },
    ];
  },

  /** A Datapath_Binding for a neutron network (a logical switch named neutron-<id>). */
  network(networkId: string, tunnelKey: number, options: { name?: string; uuidName?: string } = {}): object {
    return {
      op: 'insert',
      table: 'Datapath_Binding',
      ...(options.uuidName ? { 'uuid-name': options.uuidName } : {}),
      row: {
        tunnel_key: tunnelKey,
        external_ids: [
          'map',
          [
            ['name', `neutron-${networkId}`],
            ['name2', options.name ?? `net-${networkId.slice(0, 8)}`],
            ['logical-switch', randomUUID()],
          ],
        ],
      },
    };
  },

  /** A Port_Binding with neutron's external_ids. */
  port(p: SbPortSpec): object {
    const ext: [string, string][] = [
      ['neutron:cidrs', p.cidrs ?? p.ips.map((ip) => (ip.includes(':') ? `${ip}/64` : `${ip}/24`)).join(' ')],
      ['neutron:device_id', p.deviceId ?? ''],
      [
        'neutron:device_owner',
        p.deviceOwner ?? (p.type === 'localport' ? 'network:distributed' : 'compute:nova'),
      ],
      ['neutron:network_name', `neutron-${p.networkId}`],
      ['neutron:port_name', ''],
      ['neutron:project_id', p.projectId ?? ''],
      ['neutron:revision_number', '2'],
      ['neutron:security_group_ids', ''],
    ];
    if (p.mtu !== undefined) ext.push(['neutron:mtu', String(p.mtu)]);
    return {
      op: 'insert',
      table: 'Port_Binding',
      ...(p.uuidName ? { 'uuid-name': p.uuidName } : {}),
      row: {
        logical_port: p.id,
        type: p.type ?? '',
        datapath: [...p.datapath],
        tunnel_key: p.tunnelKey,
        mac: ['set', [[p.mac, ...p.ips].join(' ')]],
        external_ids: ['map', ext],
        ...(p.chassis ? { chassis: [...p.chassis] } : {}),
        ...(p.additionalChassis
          ? { additional_chassis: ['set', p.additionalChassis.map((c) => [...c])] }
          : {}),
      },
    };
  },

  /** Bind (or with undefined unbind) a port to a chassis, as ovn-controller claims it. */
  bind(logicalPort: string, chassis: readonly [string, string] | undefined): object {
    return {
      op: 'update',
      table: 'Port_Binding',
      where: [['logical_port', '==', logicalPort]],
      row: { chassis: chassis ? [...chassis] : ['set', []] },
    };
  },

  deletePort(logicalPort: string): object {
    return { op: 'delete', table: 'Port_Binding', where: [['logical_port', '==', logicalPort]] };
  },

  /** SB_Global (northd creates the one row) with nb_cfg. */
  global(nbCfg: number): object {
    return { op: 'insert', table: 'SB_Global', row: { nb_cfg: nbCfg } };
  },

  setNbCfg(nbCfg: number): object {
    return { op: 'update', table: 'SB_Global', where: [], row: { nb_cfg: nbCfg } };
  },
};

/** A uuid reference of a row looked up by name: select it first (`["uuid", x]` once known). */
export function uuidRef(uuid: string): readonly [string, string] {
  return ['uuid', uuid];
}
