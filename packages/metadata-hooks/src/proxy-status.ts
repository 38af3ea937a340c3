/*
 * `metadata-hooks status`: every proxy the hooks know of and whether it is healthy (alive and listening on
 * every address it should): one per hook record (a process of ours, one run elsewhere, or a daemon
 * attachment), pid files of ours without a record, the daemon's attachments no record explains, and the
 * proxies neutron itself started from its haproxy configs (the drop-in).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ProxyIdentity, parseBind } from '@nmp/common';
import { activePid, processInfo, readPidFile, run } from '@nmp/host';
import type { AttachmentStatus } from '@nmp/metadata-proxy-daemon/client';
import { type DaemonView, daemonView } from './daemon-attach.js';
import { checkHaproxyConfig } from './haproxy-compat.js';
import { HookError, type HookRecord, type HooksConfig, readRecord } from './hook-records.js';
import { formatSocket, type ListeningSocket, listeningSockets } from './proc-sockets.js';

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
  readonly identity?: ProxyIdentity;
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
  try {
    const b = parseBind(bind);
    return { address: b.host.toLowerCase(), port: b.port };
  } catch (err) {
    throw new HookError(`cannot read bind '${bind}': ${(err as Error).message}`);
  }
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
  const out: ProxyStatus[] = [];
  for (const n of names.sort()) {
    const id = n.slice(0, -'.pid.haproxy'.length);
    const pidFile = join(config.externalPids, n);
    const pid = activePid(pidFile, id);
    let identity: HookRecord['identity'] | undefined;
    let expected: string[] = [];
    try {
      const parsed = await checkHaproxyConfig(join(config.statePath, 'ns-metadata-proxy', `${id}.conf`));
      // Files under ns-metadata-proxy/ are the DHCP and L3 agents' (OVN's live under ovn-metadata-proxy/).
      if (parsed.mode !== 'ovn') identity = { mode: parsed.mode, id: parsed.id };
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
