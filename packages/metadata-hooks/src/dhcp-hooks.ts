/*
 * The DHCP agent's hooks, per network:
 *   dhcp add:    metadata addresses on the DHCP device in qdhcp-<net> (IPv6 after DAD, else IPv4 only),
 *                then the proxy bound to them with X-Neutron-Network-ID (or -Router-ID for neutron's
 *                enable_metadata_network case).
 *   dhcp remove: stop the proxy, delete the addresses this hook added (never one it found there).
 * Every step is idempotent, so an agent may repeat add on every sync.
 */
import { rmSync } from 'node:fs';
import {
  ensureAddress,
  METADATA_V4_CIDR,
  METADATA_V6_CIDR,
  namespaceExists,
  removeAddress,
  run,
  stopProxy,
  waitForDad,
} from '@nmp/host';
import { detachFromDaemon } from './daemon-attach.js';
import {
  type AddResult,
  type AddressRecord,
  checkDevice,
  checkId,
  HookError,
  type HookRecord,
  type HooksConfig,
  pidFileFor,
  type Reporter,
  readRecord,
  recordFile,
  requireNamespace,
  writeRecord,
} from './hook-records.js';
import { removeHopLimitRules, syncHopLimit } from './hop-limit-rules.js';
import { describeProxy, launch, proxyKind } from './proxy-launch.js';

export interface DhcpAddOptions {
  readonly networkId: string;
  readonly device: string;
  /** The network has an IPv6 subnet: also serve [fe80::a9fe:a9fe]:80 (after DAD). */
  readonly ipv6?: boolean;
  /** neutron's enable_metadata_network case: stamp this router id instead of the network id. */
  readonly routerId?: string;
  /** false: plumbing only; the proxy is run by something else (e.g. nmp-ns-metadata-proxy@.service). */
  readonly startProxy?: boolean;
}

/** Serve metadata for a network from its DHCP namespace. */
export async function dhcpAdd(
  config: HooksConfig,
  o: DhcpAddOptions,
  report: Reporter = () => {},
): Promise<AddResult> {
  checkId('network id', o.networkId);
  if (o.routerId !== undefined) checkId('router id', o.routerId);
  checkDevice(o.device);
  const ns = `${config.dhcpNamespacePrefix}${o.networkId}`;
  await requireNamespace(ns);
  const link = await run(['ip', '-n', ns, 'link', 'show', 'dev', o.device], { allowFailure: true });
  if (link.code !== 0) throw new HookError(`device ${o.device} does not exist in ${ns}`);

  const previous = readRecord(config, 'dhcp', o.networkId);
  const wasOurs = (cidr: string) =>
    previous?.device === o.device && (previous.addresses ?? []).some((a) => a.cidr === cidr && a.ours);
  const warnings: string[] = [];
  const addresses: AddressRecord[] = [];
  const binds: string[] = [];
  // A device change (new DHCP port) leaves our addresses on the old device behind: take them away first.
  if (previous && previous.device !== undefined && previous.device !== o.device) {
    for (const a of previous.addresses ?? []) if (a.ours) await removeAddress(ns, previous.device, a.cidr);
  }

  const v4Added = await ensureAddress(ns, o.device, METADATA_V4_CIDR);
  addresses.push({ cidr: METADATA_V4_CIDR, ours: v4Added || wasOurs(METADATA_V4_CIDR) });
  binds.push('169.254.169.254:80');

  if (o.ipv6) {
    const added = await ensureAddress(ns, o.device, METADATA_V6_CIDR);
    const ours = added || wasOurs(METADATA_V6_CIDR);
    const dad = await waitForDad(ns, o.device, METADATA_V6_CIDR, config.dadTimeout * 1000);
    if (dad === 'ready') {
      addresses.push({ cidr: METADATA_V6_CIDR, ours });
      binds.push(`[fe80::a9fe:a9fe%${o.device}]:80`);
    } else {
      // As neutron: DAD failed (another agent owns the address on this network) -> IPv4 only.
      if (ours) await removeAddress(ns, o.device, METADATA_V6_CIDR);
      const why = dad === 'dadfailed' ? 'duplicate address detection failed' : `DAD ${dad}`;
      warnings.push(`${ns}/${o.device}: fe80::a9fe:a9fe not usable (${why}); serving IPv4 only`);
    }
  } else if (wasOurs(METADATA_V6_CIDR)) {
    await removeAddress(ns, o.device, METADATA_V6_CIDR);
  }

  const hopLimit = await syncHopLimit(config, ns, binds.length > 1 ? [4, 6] : [4], [80], previous?.hopLimit);
  const identity =
    o.routerId !== undefined
      ? { mode: 'router' as const, id: o.routerId }
      : { mode: 'network' as const, id: o.networkId };
  const record: HookRecord = {
    kind: 'dhcp',
    id: o.networkId,
    namespace: ns,
    identity,
    device: o.device,
    addresses,
    binds,
    ...(hopLimit.length ? { hopLimit } : {}),
    pidFile: pidFileFor(config, o.networkId),
    proxy: proxyKind(config, o.startProxy),
    updatedAt: new Date().toISOString(),
  };
  writeRecord(config, record);
  for (const w of warnings) report(`warning: ${w}`);
  const { pid, action } = await launch(config, record, previous);
  report(`dhcp ${o.networkId}: ${describeProxy(action, pid)} in ${ns} on ${binds.join(' ')}`);
  return { record, pid, action, warnings };
}

/** Stop serving metadata for a network; undo what dhcpAdd did. */
export async function dhcpRemove(
  config: HooksConfig,
  networkId: string,
  report: Reporter = () => {},
): Promise<void> {
  checkId('network id', networkId);
  const record = readRecord(config, 'dhcp', networkId);
  const pidFile = record?.pidFile ?? pidFileFor(config, networkId);
  const checkAs = record?.identity.id ?? networkId;
  const stopped = await stopProxy(pidFile, checkAs, { killTimeoutMs: config.killTimeout * 1000 });
  const ns = record?.namespace ?? `${config.dhcpNamespacePrefix}${networkId}`;
  const daemonError =
    record?.proxy === 'daemon' || (record === undefined && config.proxyMode === 'daemon')
      ? await detachFromDaemon(config, ns)
      : undefined;
  if (record?.device !== undefined && (await namespaceExists(record.namespace))) {
    for (const a of record.addresses ?? [])
      if (a.ours) await removeAddress(record.namespace, record.device, a.cidr);
    for (const f of record.hopLimit ?? [])
      await removeHopLimitRules(record.namespace, f, { chainPrefix: config.chainPrefix });
  }
  rmSync(recordFile(config, 'dhcp', networkId), { force: true });
  const what = record?.proxy === 'daemon' ? 'detached from the daemon' : `proxy ${stopped}`;
  report(`dhcp ${networkId}: ${what}${record ? '' : ' (no record of an add)'}`);
  // Everything else is undone; the daemon keeps its attachment until it is reachable and told again
  // (or the namespace goes, which it notices).
  if (daemonError) throw daemonError;
}
