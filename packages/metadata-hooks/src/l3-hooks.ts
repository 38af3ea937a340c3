/*
 * The L3 agent's hooks, per router:
 *   l3 add:    our iptables chains in qrouter-<router> (reference §4), then the proxy on :9697 (dual-stack
 *              when the namespace has IPv6) with X-Neutron-Router-ID.
 *   l3 remove: stop the proxy, delete our chains and the jumps to them (and only ours).
 * Every step is idempotent, so an agent may repeat add on every sync.
 */
import { rmSync } from 'node:fs';
import { formatHostPort } from '@nmp/common';
import { ipv6Enabled, namespaceExists, stopProxy } from '@nmp/host';
import { detachFromDaemon } from './daemon-attach.js';
import {
  type AddResult,
  checkId,
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
import {
  applyMetadataRules,
  type IpFamily,
  type MetadataRuleOptions,
  removeMetadataRules,
} from './iptables-rules.js';
import { parseMark } from './options.js';
import { describeProxy, launch, proxyKind } from './proxy-launch.js';

export interface L3AddOptions {
  readonly routerId: string;
  /** IPv6 rules and a dual-stack bind; default: whether IPv6 is enabled in the router namespace. */
  readonly ipv6?: boolean;
  /** false: rules only; the proxy is run by something else (e.g. nmp-ns-metadata-proxy@.service). */
  readonly startProxy?: boolean;
}

function ruleOptions(config: HooksConfig): MetadataRuleOptions {
  return {
    chainPrefix: config.chainPrefix,
    interfaceMatch: config.routerInterfaceMatch,
    metadataPort: config.metadataPort,
    mark: parseMark(config.accessMark)!,
  };
}

/** Serve metadata through a router: rules of reference §4 and the proxy on metadata_port. */
export async function l3Add(
  config: HooksConfig,
  o: L3AddOptions,
  report: Reporter = () => {},
): Promise<AddResult> {
  checkId('router id', o.routerId);
  const ns = `${config.routerNamespacePrefix}${o.routerId}`;
  await requireNamespace(ns);
  const v6 = o.ipv6 ?? (await ipv6Enabled(ns));
  const previous = readRecord(config, 'l3', o.routerId);
  const families: IpFamily[] = v6 ? [4, 6] : [4];
  for (const f of families) await applyMetadataRules(ns, f, ruleOptions(config));
  if (!v6 && previous?.families?.includes(6)) await removeMetadataRules(ns, 6, ruleOptions(config));
  const binds = [formatHostPort(v6 ? '::' : '0.0.0.0', config.metadataPort)];
  // The proxy answers from metadata_port; the rule sees that port before the REDIRECT is undone.
  const hopLimit = await syncHopLimit(config, ns, families, [config.metadataPort], previous?.hopLimit);
  const record: HookRecord = {
    kind: 'l3',
    id: o.routerId,
    namespace: ns,
    identity: { mode: 'router', id: o.routerId },
    families,
    ...(hopLimit.length ? { hopLimit } : {}),
    binds,
    pidFile: pidFileFor(config, o.routerId),
    proxy: proxyKind(config, o.startProxy),
    updatedAt: new Date().toISOString(),
  };
  writeRecord(config, record);
  const { pid, action } = await launch(config, record, previous);
  report(
    `l3 ${o.routerId}: rules IPv${families.join('+IPv')} in ${ns}; ${describeProxy(action, pid)} on ${binds[0]}`,
  );
  return { record, pid, action, warnings: [] };
}

/** Stop serving metadata through a router; delete our chains (and only ours). */
export async function l3Remove(
  config: HooksConfig,
  routerId: string,
  report: Reporter = () => {},
): Promise<void> {
  checkId('router id', routerId);
  const record = readRecord(config, 'l3', routerId);
  const ns = record?.namespace ?? `${config.routerNamespacePrefix}${routerId}`;
  const stopped = await stopProxy(record?.pidFile ?? pidFileFor(config, routerId), routerId, {
    killTimeoutMs: config.killTimeout * 1000,
  });
  const daemonError =
    record?.proxy === 'daemon' || (record === undefined && config.proxyMode === 'daemon')
      ? await detachFromDaemon(config, ns)
      : undefined;
  if (await namespaceExists(ns)) {
    await removeMetadataRules(ns, 4, ruleOptions(config));
    if (record?.families?.includes(6) ?? (await ipv6Enabled(ns)))
      await removeMetadataRules(ns, 6, ruleOptions(config));
    for (const f of record?.hopLimit ?? [])
      await removeHopLimitRules(ns, f, { chainPrefix: config.chainPrefix });
  }
  rmSync(recordFile(config, 'l3', routerId), { force: true });
  const what = record?.proxy === 'daemon' ? 'detached from the daemon' : `proxy ${stopped}`;
  report(`l3 ${routerId}: ${what}; rules removed from ${ns}${record ? '' : ' (no record of an add)'}`);
  if (daemonError) throw daemonError;
}
