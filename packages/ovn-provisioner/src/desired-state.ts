/*
 * What each network's ovnmeta namespace should look like, computed from the Southbound replica alone, the
 * way neutron's OVN metadata agent decides it (reference.md §15, provision_datapath):
 *
 * - a network needs a namespace while this chassis has a VIF on it: a Port_Binding of type "" or "external"
 *   whose chassis is this one, or that lists this one among its additional_chassis (a live migration's
 *   target is provisioned early);
 * - the namespace's end of the veth carries the metadata port's MAC; the metadata port is the network's
 *   Port_Binding of type localport with device owner network:distributed (any localport of the network when
 *   none says so, as older neutron releases did not check the owner);
 * - addresses: 169.254.169.254/32, the metadata port's neutron:cidrs of the IPv4 subnets a local VIF has an
 *   address in, and when a local VIF has an IPv6 address fe80::a9fe:a9fe/64 and the EUI-64 link-local
 *   address of the metadata port's MAC;
 * - MTU: neutron:mtu of the metadata port (or of a local VIF), unchanged when neither says;
 * - no metadata port, one without a MAC, or local VIFs without any address: no namespace (torn down).
 *
 * Pure functions over rows, so the rules are tested without a database.
 */
import { canonicalIp, NEUTRON_ID_PATTERN, normaliseMac } from '@nmp/common';
import { METADATA_V4_CIDR, METADATA_V6_CIDR } from '@nmp/host';
import { addressesOf, EXT_CIDRS, EXT_DEVICE_OWNER, EXT_MTU, externalId, networkOfDatapath } from '@nmp/ovn';
import type { Row } from '@nmp/ovsdb';

export const METADATA_DEVICE_OWNER = 'network:distributed';
/**
 * What a network id must look like before it goes into namespace and device names and `ip` arguments
 * (neutron's are UUIDs; a Southbound is not trusted to be tidy).
 */
export const NETWORK_ID_RE = NEUTRON_ID_PATTERN;

/** Port types neutron's agent treats as VIFs. */
export const VIF_TYPES: readonly string[] = ['', 'external'];

export interface MetadataPort {
  readonly logicalPort: string;
  readonly mac: string;
}

/** One network's namespace as it should be. */
export interface NetworkSpec {
  readonly network: string;
  readonly datapath: string;
  readonly metadataPort: MetadataPort;
  /** Addresses on the namespace's veth end (sorted, canonical CIDR text). */
  readonly addresses: readonly string[];
  /** Some local VIF has IPv6: serve [fe80::a9fe:a9fe]:80 too. */
  readonly ipv6: boolean;
  readonly mtu: number | undefined;
}

export type NetworkPlan =
  | { readonly kind: 'provision'; readonly spec: NetworkSpec }
  | { readonly kind: 'teardown'; readonly network: string; readonly reason: string };

/** Whether a Port_Binding is a VIF of this chassis (bound here, or here as an additional chassis). */
export function isLocalVif(row: Row, chassis: string | undefined): boolean {
  if (chassis === undefined || !VIF_TYPES.includes(row.type as string)) return false;
  const c = row.chassis;
  if (Array.isArray(c) && c.includes(chassis)) return true;
  const extra = row.additional_chassis;
  return Array.isArray(extra) && extra.includes(chassis);
}

/** The metadata port among a network's localports (see the top comment). */
export function pickMetadataPort(localports: readonly Row[]): Row | undefined {
  const sorted = [...localports].sort((a, b) => String(a.logical_port).localeCompare(String(b.logical_port)));
  return sorted.find((p) => externalId(p, EXT_DEVICE_OWNER) === METADATA_DEVICE_OWNER) ?? sorted[0];
}

/** The EUI-64 link-local address of a MAC, with its /64 (what the kernel gives an interface with that MAC). */
export function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((x) => Number.parseInt(x, 16));
  const word = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  const text = `fe80:0:0:0:${word(b[0]! ^ 0x02, b[1]!)}:${word(b[2]!, 0xff)}:${word(0xfe, b[3]!)}:${word(b[4]!, b[5]!)}`;
  // The canonical spelling (RFC 5952), as `ip addr` prints it.
  return `${canonicalIp(text)}/64`;
}

/** IPv4 address (dotted) inside an IPv4 CIDR? */
function inV4Cidr(ip: string, cidr: string): boolean {
  const [net, lenText] = cidr.split('/');
  const len = Number(lenText);
  const toInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  if (!net || !Number.isInteger(len) || len < 0 || len > 32) return false;
  const mask = len === 0 ? 0 : 2 ** 32 - 2 ** (32 - len);
  return (toInt(ip) & mask) >>> 0 === (toInt(net) & mask) >>> 0;
}

function canonicalCidr(cidr: string): string | undefined {
  const [ip, len] = cidr.split('/');
  const c = ip ? canonicalIp(ip) : undefined;
  if (c === undefined || len === undefined || !/^\d{1,3}$/.test(len)) return undefined;
  return `${c}/${len}`;
}

/**
 * The plan for one network: its datapath, the rows of its localports and of this chassis' VIFs on it.
 * `ipv6Enabled`: whether the host has IPv6 (neutron adds no IPv6 address without it).
 */
export function planNetwork(
  datapath: Row,
  localports: readonly Row[],
  localVifs: readonly Row[],
  ipv6Enabled: boolean,
): NetworkPlan {
  const network = networkOfDatapath(datapath);
  if (network === undefined)
    return { kind: 'teardown', network: '', reason: 'datapath without a network name' };
  if (!NETWORK_ID_RE.test(network))
    return { kind: 'teardown', network, reason: 'network name unusable in namespace and device names' };
  if (localVifs.length === 0)
    return { kind: 'teardown', network, reason: 'no VIF of this chassis on the network' };
  const meta = pickMetadataPort(localports);
  if (!meta) return { kind: 'teardown', network, reason: 'the network has no metadata port' };
  const firstEntry = Array.isArray(meta.mac) ? String(meta.mac[0] ?? '') : '';
  const mac = normaliseMac(firstEntry.split(/\s+/)[0] ?? '');
  if (mac === undefined) return { kind: 'teardown', network, reason: 'the metadata port has no MAC address' };

  const v4: string[] = [];
  let v6 = false;
  for (const vif of localVifs) {
    for (const ip of addressesOf(vif.mac).ips) {
      if (ip.includes(':')) v6 = true;
      else v4.push(ip);
    }
  }
  if (v4.length === 0 && !v6) return { kind: 'teardown', network, reason: 'no address on the local VIFs' };
  const metaCidrs = (externalId(meta, EXT_CIDRS) ?? '')
    .split(/\s+/)
    .filter((c) => c !== '')
    .map(canonicalCidr)
    .filter((c): c is string => c !== undefined && !c.includes(':'));
  const addresses = new Set<string>([METADATA_V4_CIDR]);
  for (const cidr of metaCidrs) if (v4.some((ip) => inV4Cidr(ip, cidr))) addresses.add(cidr);
  const ipv6 = v6 && ipv6Enabled;
  if (ipv6) {
    addresses.add(METADATA_V6_CIDR);
    addresses.add(linkLocalOf(mac));
  }
  const mtuText =
    externalId(meta, EXT_MTU) ?? localVifs.map((v) => externalId(v, EXT_MTU)).find((m) => m !== undefined);
  const mtu =
    mtuText !== undefined && /^\d{2,5}$/.test(mtuText) && Number(mtuText) >= 68 && Number(mtuText) <= 65535
      ? Number(mtuText)
      : undefined;
  return {
    kind: 'provision',
    spec: {
      network,
      datapath: datapath._uuid,
      metadataPort: { logicalPort: String(meta.logical_port), mac },
      addresses: [...addresses].sort(),
      ipv6,
      mtu,
    },
  };
}

/** Device names neutron uses: tap<network[:10]>0 (OVS side) and tap<network[:10]>1 (in the namespace). */
export function vethNames(network: string): readonly [string, string] {
  return [`tap${network.slice(0, 10)}0`, `tap${network.slice(0, 10)}1`];
}
