/*
 * Shared by the OVN tests: a real Southbound ovsdb-server populated the way a neutron cloud has it, written
 * with ovsdb-client (not with our client, so a bug there cannot hide one here), and an agent configuration
 * that points at it.
 */

import { loadConfig } from '@nmp/common';
import { OvsdbServer, sbOps } from '@nmp/testkit';
import { agentSchema } from '../src/options.js';

export const DB = 'OVN_Southbound';
export const NET1 = '1e7a0c2d-0000-4000-8000-000000000001';
export const NET2 = '1e7a0c2d-0000-4000-8000-000000000002';
export const PROJECT = 'c0ffee00000000000000000000000001';

export interface Sb {
  readonly server: OvsdbServer;
  /** ["uuid", x] of a Chassis by name. */
  chassis(name: string): Promise<[string, string]>;
  /** ["uuid", x] of a network's Datapath_Binding. */
  datapath(network: string): Promise<[string, string]>;
  transact(ops: readonly object[]): Promise<unknown[]>;
}

export async function startSouthbound(
  t: Parameters<typeof OvsdbServer.start>[0],
  tcpPort?: number,
): Promise<Sb> {
  const server = await OvsdbServer.start(t, tcpPort !== undefined ? { tcpPort } : {});
  const select = async (table: string, where: unknown[]): Promise<[string, string]> => {
    const [r] = (await server.transact(DB, [
      { op: 'select', table, where: [where], columns: ['_uuid'] },
    ])) as {
      rows: { _uuid: [string, string] }[];
    }[];
    if (!r?.rows[0]) throw new Error(`no ${table} row where ${JSON.stringify(where)}`);
    return r.rows[0]._uuid;
  };
  return {
    server,
    chassis: (name) => select('Chassis', ['name', '==', name]),
    datapath: (network) =>
      select('Datapath_Binding', ['external_ids', 'includes', ['map', [['name', `neutron-${network}`]]]]),
    transact: (ops) => server.transact(DB, ops),
  };
}

/** The agent's configuration (all its options) from flags. */
export function agentConfig(flags: Record<string, unknown>) {
  return loadConfig(agentSchema, { flags, env: {} }).config;
}

export { until } from '@nmp/testkit';

/** Two networks and two chassis, as neutron + northd + two ovn-controllers leave them. */
export async function populateCloud(sb: Sb): Promise<void> {
  await sb.transact([
    ...sbOps.chassis('hv1'),
    ...sbOps.chassis('hv2'),
    sbOps.network(NET1, 1),
    sbOps.network(NET2, 2),
    sbOps.global(1),
  ]);
}

export { sbOps };
