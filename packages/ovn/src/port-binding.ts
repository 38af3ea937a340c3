/*
 * How neutron reads the Southbound's Port_Binding and Datapath_Binding rows, for the agent's lookup index and
 * the provisioner's plan alike:
 * - the network of a datapath is its external_ids:name with "neutron-" removed (neutron's
 *   get_network_name_from_datapath; a datapath without a name belongs to no network);
 * - a Port_Binding's addresses are its `mac` column, "MAC IP [IP...]" per entry (entries such as "unknown"
 *   or "router" and tokens that are not addresses are skipped);
 * - what neutron wrote about the port is in its external_ids, under the neutron:* keys below.
 */
import { canonicalIp, normaliseMac } from '@nmp/common';
import type { Row } from '@nmp/ovsdb';

export const EXT_DEVICE_ID = 'neutron:device_id';
export const EXT_PROJECT_ID = 'neutron:project_id';
export const EXT_DEVICE_OWNER = 'neutron:device_owner';
export const EXT_CIDRS = 'neutron:cidrs';
export const EXT_MTU = 'neutron:mtu';

/** neutron's get_network_name_from_datapath: external_ids:name with "neutron-" removed. */
export function networkOfDatapath(row: Row | undefined): string | undefined {
  const ext = row?.external_ids;
  if (!(ext instanceof Map)) return undefined;
  const name = ext.get('name');
  if (typeof name !== 'string' || name === '') return undefined;
  return name.replaceAll('neutron-', '');
}

/** A row's external_ids value under `key`, if it has one. */
export function externalId(row: Row, key: string): string | undefined {
  const e = row.external_ids;
  const v = e instanceof Map ? e.get(key) : undefined;
  return typeof v === 'string' ? v : undefined;
}

/** A dotted IPv4 address already in canonical form (what northd writes): no need to parse it. */
const CANONICAL_V4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const CANONICAL_MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** The MACs and IPs of a Port_Binding's `mac` column ("MAC IP [IP ...]" per entry). */
export function addressesOf(mac: unknown): { macs: string[]; ips: string[] } {
  const macs: string[] = [];
  const ips: string[] = [];
  if (!Array.isArray(mac)) return { macs, ips };
  for (const entry of mac) {
    if (typeof entry !== 'string') continue;
    const tokens = entry.trim().split(/\s+/);
    const first = tokens[0] ?? '';
    const m = CANONICAL_MAC.test(first) ? first : normaliseMac(first);
    if (m === undefined) continue;
    macs.push(m);
    for (let i = 1; i < tokens.length; i++) {
      const token = tokens[i]!;
      const ip = CANONICAL_V4.test(token) ? token : canonicalIp(token);
      if (ip !== undefined) ips.push(ip);
    }
  }
  return { macs, ips };
}
