/*
 * The kernel side of an ovnmeta namespace, with iproute2 as neutron's ip_lib does it (and as the hooks
 * do: an argv array, no shell, so names cannot inject anything): the namespace, the veth pair with one end
 * in it, the end's MAC, MTU and addresses, and ethtool for the userspace datapath's checksum problem.
 *
 * `host` is the namespace where OVS runs and the veth's OVS end lives: undefined in production (the
 * provisioner's own, the root namespace); tests give a namespace of theirs so the root one is never touched.
 * Listing namespaces, reading a device's addresses and the IPv6 switch are @nmp/host's, as for the hooks.
 */
import { deviceAddresses, listNamespaces, run } from '@nmp/host';

/** `ip [-n host] ...` */
function ip(host: string | undefined, args: readonly string[]): string[] {
  return host === undefined ? ['ip', ...args] : ['ip', '-n', host, ...args];
}

/** Create the namespace unless it exists; its loopback up. */
export async function ensureNamespace(ns: string): Promise<void> {
  if (!(await listNamespaces()).includes(ns)) await run(['ip', 'netns', 'add', ns]);
  await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
}

export async function deleteNamespace(ns: string): Promise<void> {
  const r = await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  if (r.code !== 0 && !/No such file|not found/i.test(r.stderr))
    throw new Error(`cannot delete namespace ${ns}: ${r.stderr.trim()}`);
}

/** Does `dev` exist (in namespace `ns`, or in the host's when undefined)? */
export async function deviceExists(ns: string | undefined, dev: string): Promise<boolean> {
  const r = await run(ip(ns, ['link', 'show', 'dev', dev]), { allowFailure: true });
  return r.code === 0;
}

/** A veth pair: `outer` in the host namespace, `inner` in `ns`. */
export async function createVeth(
  host: string | undefined,
  outer: string,
  inner: string,
  ns: string,
): Promise<void> {
  await run(ip(host, ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]));
}

export async function deleteDevice(ns: string | undefined, dev: string): Promise<void> {
  const r = await run(ip(ns, ['link', 'del', dev]), { allowFailure: true });
  if (r.code !== 0 && !/Cannot find device|does not exist|not found/i.test(r.stderr))
    throw new Error(`cannot delete ${dev}: ${r.stderr.trim()}`);
}

export interface LinkSettings {
  readonly mac?: string;
  readonly mtu?: number;
}

/** Set what is given, then bring the device up. */
export async function configureLink(ns: string | undefined, dev: string, s: LinkSettings): Promise<void> {
  if (s.mac !== undefined) await run(ip(ns, ['link', 'set', 'dev', dev, 'address', s.mac]));
  if (s.mtu !== undefined) await run(ip(ns, ['link', 'set', 'dev', dev, 'mtu', String(s.mtu)]));
  await run(ip(ns, ['link', 'set', 'dev', dev, 'up']));
}

/** The device's addresses as CIDRs (both families). */
export async function addressesOn(ns: string, dev: string): Promise<string[]> {
  return (await deviceAddresses(ns, dev)).map((a) => a.cidr.toLowerCase());
}

/** Add an address; IPv6 without duplicate address detection (see provisioner.ts for why). */
export async function addAddress(ns: string, dev: string, cidr: string): Promise<void> {
  await run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])]);
}

export async function removeAddress(ns: string, dev: string, cidr: string): Promise<void> {
  const r = await run(['ip', '-n', ns, 'addr', 'del', cidr, 'dev', dev], { allowFailure: true });
  if (r.code !== 0 && !/Cannot assign|No such|not found/i.test(r.stderr))
    throw new Error(`cannot delete ${cidr} from ${dev} in ${ns}: ${r.stderr.trim()}`);
}

/**
 * Turn transmit checksum offload off on `dev` in `ns`. With OVS's userspace (netdev) datapath the checksums
 * a veth leaves to offload are never filled in, and TCP from the namespace is dropped (neutron's LP#1904871,
 * which it fixes with an iptables CHECKSUM rule; this does the same at the device).
 */
export async function disableTxChecksum(ns: string, dev: string): Promise<void> {
  await run(['ip', 'netns', 'exec', ns, 'ethtool', '-K', dev, 'tx', 'off']);
}
