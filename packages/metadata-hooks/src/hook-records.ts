/*
 * What the hooks remember and check: the configuration's type, the record of what an add did
 * (`<hooks_state_dir>/<kind>-<id>.json`, so that remove undoes exactly that, even after a reboot of the
 * agent), where a proxy's pid file and output log go, and the checks every hook runs on its input.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ConfigOf,
  type IdentityMode,
  isNeutronId,
  type ProgramErrorCode,
  type ProxyIdentity,
} from '@nmp/common';
import { namespaceExists, type StartAction } from '@nmp/host';
import type { IpFamily } from './iptables-rules.js';
import type { hooksOptions } from './options.js';

export type HooksConfig = ConfigOf<typeof hooksOptions>;

export type Reporter = (message: string) => void;

/** What add did about the proxy. */
export type ProxyAction = StartAction | 'external' | 'attached';

const DEVICE_RE = /^[A-Za-z0-9_.@-]{1,15}$/;

export class HookError extends Error {
  readonly code = 'MDH_ERR_HOOK' satisfies ProgramErrorCode;
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
  /** Identity the proxy stamps (the hooks plumb qdhcp and qrouter namespaces: never ovn). */
  readonly identity: ProxyIdentity & { readonly mode: Exclude<IdentityMode, 'ovn'> };
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

export function checkId(what: string, id: string): void {
  if (!isNeutronId(id)) throw new HookError(`invalid ${what} '${id}'`);
}

export function pidFileFor(config: HooksConfig, id: string): string {
  return join(config.externalPids, `${id}.pid.ns-metadata-proxy`);
}

export function recordFile(config: HooksConfig, kind: 'dhcp' | 'l3', id: string): string {
  return join(config.hooksStateDir, `${kind}-${id}.json`);
}

export function logFileFor(config: HooksConfig, id: string): string {
  return join(config.hooksStateDir, 'logs', `${id}.log`);
}

export function readRecord(config: HooksConfig, kind: 'dhcp' | 'l3', id: string): HookRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordFile(config, kind, id), 'utf8')) as HookRecord;
  } catch {
    return undefined;
  }
}

export function writeRecord(config: HooksConfig, r: HookRecord): void {
  mkdirSync(config.hooksStateDir, { recursive: true, mode: 0o750 });
  const file = recordFile(config, r.kind, r.id);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(r, null, 2)}\n`, { mode: 0o640 });
  renameSync(`${file}.tmp`, file);
}

export async function requireNamespace(ns: string): Promise<void> {
  if (!(await namespaceExists(ns))) throw new HookError(`namespace ${ns} does not exist`);
}

export function checkDevice(device: string): void {
  if (!DEVICE_RE.test(device)) throw new HookError(`invalid device name '${device}'`);
}
