/*
 * The metadata addresses on a DHCP port's device inside its namespace (reference.md §5, §2.1):
 * 169.254.169.254/32, and fe80::a9fe:a9fe/64 when the network has IPv6. For the IPv6 address we wait for
 * duplicate address detection; if it fails (another DHCP agent already owns the address on this network)
 * or does not finish in time, the address is deleted again and the proxy is started without it, as
 * neutron does. Only addresses we added are reported as added, so removal never takes away an address
 * someone else configured. The provisioner reads its ovnmeta devices' addresses and the host's IPv6 switch
 * with the same functions.
 */
import { run } from './command.js';

export const METADATA_V4_CIDR = '169.254.169.254/32';
export const METADATA_V6_CIDR = 'fe80::a9fe:a9fe/64';

export interface DeviceAddress {
  /** Address with prefix length, as `ip -o addr` prints it. */
  readonly cidr: string;
  readonly flags: readonly string[];
}

/** Addresses on `dev` in `ns` (both families), with flags such as tentative, dadfailed. */
export async function deviceAddresses(ns: string, dev: string): Promise<DeviceAddress[]> {
  const r = await run(['ip', '-n', ns, '-o', 'addr', 'show', 'dev', dev]);
  const out: DeviceAddress[] = [];
  for (const line of r.stdout.split('\n')) {
    // "2: tap0    inet6 fe80::a9fe:a9fe/64 scope link tentative \       valid_lft forever ..."
    const m = /\binet6?\s+(\S+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const rest = m[2]!.split('\\')[0]!.trim().split(/\s+/);
    out.push({ cidr: m[1]!, flags: rest });
  }
  return out;
}

function sameCidr(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** Add `cidr` to `dev` unless present. Returns true when this call added it. */
export async function ensureAddress(ns: string, dev: string, cidr: string): Promise<boolean> {
  const present = (await deviceAddresses(ns, dev)).some((a) => sameCidr(a.cidr, cidr));
  if (present) return false;
  const r = await run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', dev], { allowFailure: true });
  if (r.code === 0) return true;
  // Lost a race with another caller: fine if it is there now.
  if ((await deviceAddresses(ns, dev)).some((a) => sameCidr(a.cidr, cidr))) return false;
  throw new Error(`cannot add ${cidr} to ${dev} in ${ns}: ${r.stderr.trim()}`);
}

/** Delete `cidr` from `dev` if present (missing namespace or device counts as already gone). */
export async function removeAddress(ns: string, dev: string, cidr: string): Promise<boolean> {
  const r = await run(['ip', '-n', ns, 'addr', 'del', cidr, 'dev', dev], { allowFailure: true });
  if (r.code === 0) return true;
  if (/Cannot assign|Cannot find device|No such|does not exist|not found/i.test(r.stderr)) return false;
  throw new Error(`cannot delete ${cidr} from ${dev} in ${ns}: ${r.stderr.trim()}`);
}

export type DadOutcome = 'ready' | 'dadfailed' | 'timeout' | 'missing';

/** Wait until `cidr` on `dev` is no longer tentative. */
export async function waitForDad(
  ns: string,
  dev: string,
  cidr: string,
  timeoutMs: number,
): Promise<DadOutcome> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = (await deviceAddresses(ns, dev)).find((x) => sameCidr(x.cidr, cidr));
    if (!a) return 'missing';
    if (a.flags.includes('dadfailed')) return 'dadfailed';
    if (!a.flags.includes('tentative')) return 'ready';
    if (Date.now() >= deadline) return 'timeout';
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Is IPv6 enabled inside `ns`? (`net.ipv6.conf.all.disable_ipv6` read from within the namespace.) */
export async function ipv6Enabled(ns: string | undefined): Promise<boolean> {
  const argv = ['cat', '/proc/sys/net/ipv6/conf/all/disable_ipv6'];
  const r = await run(ns === undefined ? argv : ['ip', 'netns', 'exec', ns, ...argv], { allowFailure: true });
  return r.code === 0 && r.stdout.trim() === '0';
}
