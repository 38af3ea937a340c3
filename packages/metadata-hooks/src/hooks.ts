/*
 * What the DHCP and L3 agents call, per network and per router:
 *
 *   dhcp add:    metadata addresses on the DHCP device in qdhcp-<net> (IPv6 after DAD, else IPv4 only),
 *                then the proxy bound to them with X-Neutron-Network-ID (or -Router-ID for neutron's
 *                enable_metadata_network case).
 *   dhcp remove: stop the proxy, delete the addresses this hook added (never one it found there).
 *   l3 add:      our iptables chains in qrouter-<router> (reference §4), then the proxy on :9697
 *                (dual-stack when the namespace has IPv6) with X-Neutron-Router-ID.
 *   l3 remove:   stop the proxy, delete our chains and the jumps to them.
 *   status:      each proxy we manage: pid, owner, listening sockets, healthy or not.
 *
 * proxy_mode = daemon: instead of starting a proxy, add attaches the namespace to the one
 * metadata-proxy-daemon over its control socket (binds and id as above), remove detaches it, and status
 * lists the daemon's attachments. Addresses and iptables rules are still the hooks' job.
 *
 * Every step is idempotent, so an agent may repeat add on every sync. What an add did is kept in
 * `<hooks_state_dir>/<kind>-<id>.json` so that remove undoes exactly that, even after a reboot of the agent.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ConfigOf, SERVICE_NODE_FLAGS } from '@nmp/common';
import {
  type AttachMode,
  type AttachmentStatus,
  type DaemonHealth,
  DaemonUnreachableError,
  daemonClient,
} from '@nmp/metadata-proxy-daemon';
import { run } from './command.js';
import { checkHaproxyConfig } from './haproxy-compat.js';
import { applyHopLimitRules, removeHopLimitRules } from './hop-limit-rules.js';
import {
  applyMetadataRules,
  type IpFamily,
  type MetadataRuleOptions,
  removeMetadataRules,
} from './iptables-rules.js';
import {
  ensureAddress,
  ipv6Enabled,
  METADATA_V4_CIDR,
  METADATA_V6_CIDR,
  namespaceExists,
  removeAddress,
  waitForDad,
} from './namespace-addresses.js';
import { type hooksOptions, parseMark } from './options.js';
import { formatSocket, type ListeningSocket, listeningSockets } from './proc-sockets.js';
import {
  activePid,
  processInfo,
  readPidFile,
  type StartAction,
  startProxy,
  stopProxy,
} from './process-manager.js';

export type HooksConfig = ConfigOf<typeof hooksOptions>;

export type Reporter = (message: string) => void;

/** What add did about the proxy. */
export type ProxyAction = StartAction | 'external' | 'attached';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DEVICE_RE = /^[A-Za-z0-9_.@-]{1,15}$/;

export class HookError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HookError';
  }
}

export interface AddressRecord {
  readonly cidr: string;
  /** True when a hook added it (and remove may delete it). */
  readonly ours: boolean;
}

export interface HookRecord {
  readonly kind: 'dhcp' | 'l3';
  /** Network id (dhcp) or router id (l3): names the record, the namespace and the pid file. */
  readonly id: string;
  readonly namespace: string;
  /** Identity the proxy stamps. */
  readonly identity: { readonly mode: 'network' | 'router'; readonly id: string };
  readonly device?: string;
  readonly addresses?: readonly AddressRecord[];
  /** Address families whose iptables rules are installed (l3). */
  readonly families?: readonly IpFamily[];
  /** Address families whose hop-limit chain is installed (hop_limit on). */
  readonly hopLimit?: readonly IpFamily[];
  readonly binds: readonly string[];
  readonly pidFile: string;
  /**
   * hooks: the hooks start and stop the proxy; external: plumbing only, the proxy runs elsewhere (systemd);
   * daemon: listeners in the metadata-proxy-daemon (proxy_mode = daemon).
   */
  readonly proxy: 'hooks' | 'external' | 'daemon';
  readonly updatedAt: string;
}

export interface AddResult {
  readonly record: HookRecord;
  /** The proxy's pid (undefined when the proxy is external; the daemon's serving worker in daemon mode). */
  readonly pid: number | undefined;
  readonly action: ProxyAction;
  readonly warnings: readonly string[];
}

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

export interface L3AddOptions {
  readonly routerId: string;
  /** IPv6 rules and a dual-stack bind; default: whether IPv6 is enabled in the router namespace. */
  readonly ipv6?: boolean;
  /** false: rules only; the proxy is run by something else (e.g. nmp-ns-metadata-proxy@.service). */
  readonly startProxy?: boolean;
}

function checkId(what: string, id: string): void {
  if (!ID_RE.test(id)) throw new HookError(`invalid ${what} '${id}'`);
}

export function pidFileFor(config: HooksConfig, id: string): string {
  return join(config.externalPids, `${id}.pid.ns-metadata-proxy`);
}

function recordFile(config: HooksConfig, kind: 'dhcp' | 'l3', id: string): string {
  return join(config.hooksStateDir, `${kind}-${id}.json`);
}

function logFileFor(config: HooksConfig, id: string): string {
  return join(config.hooksStateDir, 'logs', `${id}.log`);
}

export function readRecord(config: HooksConfig, kind: 'dhcp' | 'l3', id: string): HookRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordFile(config, kind, id), 'utf8')) as HookRecord;
  } catch {
    return undefined;
  }
}

function writeRecord(config: HooksConfig, r: HookRecord): void {
  mkdirSync(config.hooksStateDir, { recursive: true, mode: 0o750 });
  const file = recordFile(config, r.kind, r.id);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(r, null, 2)}\n`, { mode: 0o640 });
  renameSync(`${file}.tmp`, file);
}

/**
 * The command that starts ns-metadata-proxy: the configured one, or the one installed beside us; a script
 * runs under this node with the services' flags.
 */
export function proxyProgram(config: HooksConfig): string[] {
  const path =
    config.proxyCommand !== ''
      ? config.proxyCommand
      : fileURLToPath(new URL('../../../ns-metadata-proxy/dist/src/cli.js', import.meta.url));
  return /\.(c|m)?js$/.test(path) ? [process.execPath, ...SERVICE_NODE_FLAGS, path] : [path];
}

/** Full argv of a proxy. */
export function proxyArgv(
  config: HooksConfig,
  identity: HookRecord['identity'],
  binds: readonly string[],
  pidFile: string,
): string[] {
  return [
    ...proxyProgram(config),
    ...binds.flatMap((b) => ['--bind', b]),
    identity.mode === 'network' ? '--network-id' : '--router-id',
    identity.id,
    '--metadata-proxy-socket',
    config.socketPath,
    '--pid-file',
    pidFile,
    ...(config.proxyUser !== '' ? ['--metadata-proxy-user', config.proxyUser] : []),
    ...(config.proxyGroup !== '' ? ['--metadata-proxy-group', config.proxyGroup] : []),
    ...config.proxyConfigFiles.flatMap((f) => ['--config-file', f]),
  ];
}

async function requireNamespace(ns: string): Promise<void> {
  if (!(await namespaceExists(ns))) throw new HookError(`namespace ${ns} does not exist`);
}

function proxyKind(config: HooksConfig, startProxy: boolean | undefined): HookRecord['proxy'] {
  if (startProxy === false) return 'external';
  return config.proxyMode === 'daemon' ? 'daemon' : 'hooks';
}

/** Seconds a daemon attach may take: the helper's start plus some. */
function daemonTimeoutMs(config: HooksConfig): number {
  return config.startTimeout * 1000 + 15_000;
}

function daemonFailure(config: HooksConfig, err: unknown): HookError {
  if (err instanceof DaemonUnreachableError)
    return new HookError(
      `${err.message}; is nmp-metadata-proxy-daemon.service running? (daemon_control_socket = ${config.daemonControlSocket})`,
    );
  return new HookError(`metadata proxy daemon: ${(err as Error).message ?? String(err)}`);
}

/** Detach a namespace from the daemon; an unreachable daemon is returned as an error, not thrown. */
async function detachFromDaemon(config: HooksConfig, namespace: string): Promise<HookError | undefined> {
  try {
    await daemonClient.detach(config.daemonControlSocket, { namespace }, daemonTimeoutMs(config));
    return undefined;
  } catch (err) {
    return daemonFailure(config, err);
  }
}

async function launch(
  config: HooksConfig,
  record: HookRecord,
  previous: HookRecord | undefined,
): Promise<{ pid: number | undefined; action: ProxyAction }> {
  if (record.proxy !== 'daemon' && previous?.proxy === 'daemon') {
    // Leaving daemon mode: the daemon must not hold the port any more.
    const failed = await detachFromDaemon(config, record.namespace);
    if (failed) throw failed;
  }
  if (record.proxy === 'daemon') {
    // Entering daemon mode: a proxy process of ours must not hold the port.
    await stopProxy(record.pidFile, record.identity.id, { killTimeoutMs: config.killTimeout * 1000 });
    try {
      await daemonClient.attach(
        config.daemonControlSocket,
        {
          id: record.identity.id,
          mode: record.identity.mode,
          namespace: record.namespace,
          binds: record.binds,
        },
        daemonTimeoutMs(config),
      );
      const { daemon } = await daemonClient.list(config.daemonControlSocket, daemonTimeoutMs(config));
      return { pid: daemon.workerPid, action: 'attached' };
    } catch (err) {
      throw daemonFailure(config, err);
    }
  }
  if (record.proxy === 'external') {
    // Switching to an externally run proxy: ours must not hold the port.
    await stopProxy(record.pidFile, record.identity.id, { killTimeoutMs: config.killTimeout * 1000 });
    return { pid: undefined, action: 'external' };
  }
  return startProxy(
    {
      id: record.identity.id,
      namespace: record.namespace,
      argv: proxyArgv(config, record.identity, record.binds, record.pidFile),
      pidFile: record.pidFile,
      logFile: logFileFor(config, record.id),
    },
    { startTimeoutMs: config.startTimeout * 1000, killTimeoutMs: config.killTimeout * 1000 },
  );
}

/** Serve metadata for a network from its DHCP namespace. */
export async function dhcpAdd(
  config: HooksConfig,
  o: DhcpAddOptions,
  report: Reporter = () => {},
): Promise<AddResult> {
  checkId('network id', o.networkId);
  if (o.routerId !== undefined) checkId('router id', o.routerId);
  if (!DEVICE_RE.test(o.device)) throw new HookError(`invalid device name '${o.device}'`);
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

function describeProxy(action: ProxyAction, pid: number | undefined): string {
  if (action === 'external') return 'proxy run externally (not started here)';
  if (action === 'attached') return `attached to the metadata proxy daemon (worker pid ${pid ?? '?'})`;
  return `proxy ${action} (pid ${pid})`;
}

function ruleOptions(config: HooksConfig): MetadataRuleOptions {
  return {
    chainPrefix: config.chainPrefix,
    interfaceMatch: config.routerInterfaceMatch,
    metadataPort: config.metadataPort,
    mark: parseMark(config.accessMark)!,
  };
}

/**
 * The hop-limit chain of the SSRF defences (hop_limit): installed for `families` when on, removed from
 * the families that had it before and no longer do. Returns the families that have it now.
 */
async function syncHopLimit(
  config: HooksConfig,
  ns: string,
  families: readonly IpFamily[],
  ports: readonly number[],
  before: readonly IpFamily[] | undefined,
): Promise<IpFamily[]> {
  const now: IpFamily[] = config.hopLimit === 'off' ? [] : [...families];
  for (const f of now)
    await applyHopLimitRules(ns, f, {
      chainPrefix: config.chainPrefix,
      ports,
      scope: config.hopLimit === 'all' ? 'all' : 'token',
    });
  for (const f of before ?? []) {
    if (!now.includes(f)) await removeHopLimitRules(ns, f, { chainPrefix: config.chainPrefix });
  }
  return now;
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
  const binds = [v6 ? `[::]:${config.metadataPort}` : `0.0.0.0:${config.metadataPort}`];
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

export interface ProxyStatus {
  /**
   * dhcp / l3: added by these hooks; neutron: started by neutron from its haproxy config; unknown: a pid
   * file without a record; daemon: an attachment of the metadata-proxy-daemon without a hook record (or the
   * daemon itself, id 'daemon', when it cannot be reached).
   */
  readonly kind: 'dhcp' | 'l3' | 'neutron' | 'unknown' | 'daemon';
  readonly id: string;
  readonly namespace?: string;
  /** What the proxy stamps; `ovn` for an ovnmeta- namespace attached to the daemon by the OVN agent. */
  readonly identity?: { readonly mode: AttachMode; readonly id: string };
  readonly pid?: number;
  readonly running: boolean;
  /** Effective uid and gid of the running proxy. */
  readonly uid?: number;
  readonly gid?: number;
  readonly expected: readonly string[];
  readonly listening: readonly string[];
  readonly missing: readonly string[];
  readonly healthy: boolean;
  readonly pidFile: string;
  /** For neutron-started proxies: whether the process is ours or still haproxy. */
  readonly program?: 'ns-metadata-proxy' | 'haproxy';
  /** For hook records: who runs the proxy. */
  readonly proxy?: 'hooks' | 'external' | 'daemon';
  /** Daemon mode: the attachment's state (listening, namespace-missing, failed, attaching) or why unknown. */
  readonly daemonState?: string;
}

/** What the daemon said (or why it said nothing), fetched once per status. */
export interface DaemonView {
  readonly daemon?: DaemonHealth;
  readonly attachments: ReadonlyMap<string, AttachmentStatus>;
  readonly error?: string;
}

export async function daemonView(config: HooksConfig): Promise<DaemonView> {
  try {
    const l = await daemonClient.list(config.daemonControlSocket, daemonTimeoutMs(config));
    return { daemon: l.daemon, attachments: new Map(l.attachments.map((a) => [a.namespace, a])) };
  } catch (err) {
    return { attachments: new Map(), error: daemonFailure(config, err).message };
  }
}

/** `[::]:9697` as the daemon shows it -> the form /proc listings are compared in. */
function normalSocket(s: string): string {
  try {
    return formatSocket(expectedSocket(s));
  } catch {
    return s;
  }
}

function daemonStatus(
  kind: ProxyStatus['kind'],
  expected: readonly string[],
  a: AttachmentStatus | undefined,
  view: DaemonView,
  record?: HookRecord,
): ProxyStatus {
  const listening = (a?.listening ?? []).map(normalSocket);
  const missing = expected.filter((e) => !listening.includes(e));
  const pid = view.daemon?.workerPid;
  const running = a?.state === 'listening' && pid !== undefined;
  return {
    kind,
    id: record?.id ?? a?.id ?? 'daemon',
    ...(record || a ? { namespace: record?.namespace ?? a!.namespace } : {}),
    ...(record || a ? { identity: record?.identity ?? { mode: a!.mode, id: a!.id } } : {}),
    proxy: 'daemon',
    ...(pid !== undefined && running ? { pid, ...ids(pid) } : {}),
    running,
    expected,
    listening,
    missing,
    healthy: running && missing.length === 0 && a?.healthy === true,
    pidFile: '',
    daemonState: view.error ?? (a ? `${a.state}${a.error ? `: ${a.error}` : ''}` : 'not attached'),
  };
}

/** `169.254.169.254:80`, `[fe80::a9fe:a9fe%tap]:80`, `[::]:9697` -> the socket /proc shows. */
export function expectedSocket(bind: string): { address: string; port: number } {
  const m = /^\[([^\]%]+)(?:%[^\]]+)?\]:(\d+)$/.exec(bind) ?? /^([^:]+):(\d+)$/.exec(bind);
  if (!m) throw new HookError(`cannot read bind '${bind}'`);
  return { address: m[1]!.toLowerCase(), port: Number(m[2]) };
}

function ids(pid: number): { uid?: number; gid?: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(s);
    const gid = /^Gid:\s+\d+\s+(\d+)/m.exec(s);
    return { ...(uid ? { uid: Number(uid[1]) } : {}), ...(gid ? { gid: Number(gid[1]) } : {}) };
  } catch {
    return {};
  }
}

/** Pids of the processes in namespace `ns` (`ip netns pids`). */
async function pidsInNamespace(ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns], { allowFailure: true });
  return r.stdout
    .split(/\s+/)
    .filter((x) => /^\d+$/.test(x))
    .map(Number);
}

/**
 * Status of one record's proxy. For a hooks-run proxy: the pid file's process. For an external one
 * (systemd): whichever process in the namespace listens on the expected sockets.
 */
export async function statusOf(record: HookRecord, view?: DaemonView): Promise<ProxyStatus> {
  const expected = record.binds.map((b) => formatSocket(expectedSocket(b)));
  if (record.proxy === 'daemon') {
    const v = view ?? { attachments: new Map(), error: 'daemon not asked' };
    return daemonStatus(record.kind, expected, v.attachments.get(record.namespace), v, record);
  }
  let pid: number | undefined;
  let sockets: ListeningSocket[] = [];
  if (record.proxy === 'external') {
    for (const p of await pidsInNamespace(record.namespace)) {
      const mine = listeningSockets(p);
      if (mine.some((x) => expected.includes(formatSocket(x)))) {
        pid = p;
        sockets = mine;
        break;
      }
    }
  } else {
    pid = activePid(record.pidFile, record.identity.id);
    sockets = pid !== undefined ? listeningSockets(pid) : [];
  }
  const listening = sockets.map(formatSocket);
  const missing = expected.filter((e) => !listening.includes(e));
  return {
    kind: record.kind,
    id: record.id,
    namespace: record.namespace,
    identity: record.identity,
    proxy: record.proxy,
    ...(pid !== undefined ? { pid, ...ids(pid) } : {}),
    running: pid !== undefined,
    expected,
    listening,
    missing,
    healthy: pid !== undefined && missing.length === 0,
    pidFile: record.pidFile,
  };
}

/** The named namespace (under /run/netns) process `pid` lives in, if any. */
export function namespaceOf(pid: number): string | undefined {
  try {
    const ino = statSync(`/proc/${pid}/ns/net`).ino;
    return readdirSync('/run/netns').find((n) => {
      try {
        return statSync(join('/run/netns', n)).ino === ino;
      } catch {
        return false;
      }
    });
  } catch {
    return undefined;
  }
}

/**
 * Proxies neutron itself started from its haproxy configs (`<external_pids>/<id>.pid.haproxy`): ours
 * through the drop-in, or still the real haproxy. Expected binds come from
 * `<state_path>/ns-metadata-proxy/<id>.conf`, read with the proxy's parser.
 */
async function neutronSpawned(config: HooksConfig): Promise<ProxyStatus[]> {
  let names: string[] = [];
  try {
    names = readdirSync(config.externalPids).filter((n) => n.endsWith('.pid.haproxy'));
  } catch {
    return [];
  }
  const program = proxyProgram(config);
  const out: ProxyStatus[] = [];
  for (const n of names.sort()) {
    const id = n.slice(0, -'.pid.haproxy'.length);
    const pidFile = join(config.externalPids, n);
    const pid = activePid(pidFile, id);
    let identity: HookRecord['identity'] | undefined;
    let expected: string[] = [];
    try {
      const parsed = await checkHaproxyConfig(
        program[program.length - 1]!,
        join(config.statePath, 'ns-metadata-proxy', `${id}.conf`),
      );
      identity = { mode: parsed.mode, id: parsed.id };
      expected = parsed.binds.map((b) => formatSocket({ address: b.host, port: b.port }));
    } catch {
      // config gone or unreadable: report what the process shows
    }
    const listening = pid !== undefined ? listeningSockets(pid).map(formatSocket) : [];
    const missing = expected.filter((e) => !listening.includes(e));
    const cmd = pid !== undefined ? processInfo(pid).cmdline.join(' ') : '';
    const ns = pid !== undefined ? namespaceOf(pid) : undefined;
    out.push({
      kind: 'neutron',
      id,
      ...(ns ? { namespace: ns } : {}),
      ...(identity ? { identity } : {}),
      ...(pid !== undefined ? { pid, ...ids(pid) } : {}),
      ...(pid !== undefined
        ? { program: /ns-metadata-proxy/.test(cmd) ? 'ns-metadata-proxy' : 'haproxy' }
        : {}),
      running: pid !== undefined,
      expected,
      listening,
      missing,
      healthy: pid !== undefined && missing.length === 0,
      pidFile,
    });
  }
  return out;
}

/**
 * Every proxy we know of: one per hook record, pid files of ours without a record, and the proxies
 * neutron started from its haproxy configs (drop-in mode).
 */
export async function proxyStatus(config: HooksConfig): Promise<ProxyStatus[]> {
  const out: ProxyStatus[] = [];
  const seen = new Set<string>();
  let names: string[] = [];
  try {
    names = readdirSync(config.hooksStateDir).sort();
  } catch {
    // no state yet
  }
  const records: HookRecord[] = [];
  for (const n of names) {
    const m = /^(dhcp|l3)-(.+)\.json$/.exec(n);
    if (!m) continue;
    const r = readRecord(config, m[1] as 'dhcp' | 'l3', m[2]!);
    if (r) records.push(r);
  }
  const askDaemon = config.proxyMode === 'daemon' || records.some((r) => r.proxy === 'daemon');
  const view = askDaemon ? await daemonView(config) : undefined;
  for (const r of records) {
    seen.add(r.pidFile);
    out.push(await statusOf(r, view));
  }
  if (view) {
    // The daemon's attachments no record of ours explains (attached by hand, or records lost).
    const mine = new Set(records.filter((r) => r.proxy === 'daemon').map((r) => r.namespace));
    for (const a of view.attachments.values())
      if (!mine.has(a.namespace)) out.push(daemonStatus('daemon', a.binds.map(normalSocket), a, view));
    if (view.error !== undefined) out.push(daemonStatus('daemon', [], undefined, view));
  }
  let pidFiles: string[] = [];
  try {
    pidFiles = readdirSync(config.externalPids).filter((n) => n.endsWith('.pid.ns-metadata-proxy'));
  } catch {
    // no pid directory
  }
  for (const n of pidFiles.sort()) {
    const file = join(config.externalPids, n);
    if (seen.has(file)) continue;
    const id = n.slice(0, -'.pid.ns-metadata-proxy'.length);
    const pid = readPidFile(file);
    const running = pid !== undefined && processInfo(pid).alive;
    const listening = running ? listeningSockets(pid!).map(formatSocket) : [];
    out.push({
      kind: 'unknown',
      id,
      ...(running ? { pid: pid!, ...ids(pid!) } : {}),
      running,
      expected: [],
      listening,
      missing: [],
      healthy: false,
      pidFile: file,
    });
  }
  out.push(...(await neutronSpawned(config)));
  return out;
}

/** Human-readable status lines. */
export function formatStatus(list: readonly ProxyStatus[]): string {
  if (list.length === 0) return 'no metadata proxies managed here\n';
  return list
    .map((s) => {
      const who = `${s.identity ? `${s.identity.mode} ${s.identity.id}` : s.id}${s.program ? ` [${s.program}]` : ''}`;
      const state = s.healthy
        ? 'healthy'
        : s.proxy === 'daemon'
          ? `UNHEALTHY (${s.daemonState ?? 'unknown'})`
          : s.running
            ? `UNHEALTHY (not listening on ${s.missing.join(' ')})`
            : 'DEAD';
      const proc = s.running
        ? `${s.proxy === 'daemon' ? 'daemon worker ' : ''}pid ${s.pid} uid ${s.uid ?? '?'}`
        : 'no process';
      const ns = `${s.namespace ? ` in ${s.namespace}` : ''}${s.proxy === 'external' ? ' (proxy run externally)' : ''}${s.proxy === 'daemon' ? ' (metadata proxy daemon)' : ''}`;
      return `${s.kind} ${who}${ns}: ${state}; ${proc}; listening ${s.listening.join(' ') || '-'}`;
    })
    .join('\n')
    .concat('\n');
}
