/*
 * Switching a node's neutron-started metadata proxies from haproxy to ours, and back, with one command
 * and without editing neutron's files (way A of docs/deployment.md):
 *
 *   enable:  dpkg-divert moves /usr/sbin/haproxy to /usr/sbin/haproxy.nmp-real (a diversion owned by the
 *            nmp package: upgrades of haproxy land there, and dpkg knows whose it is) and links
 *            /usr/sbin/haproxy to the release's bin/haproxy. That wrapper serves the configs neutron's
 *            agents write for their metadata proxies ($state_path/ns-metadata-proxy/, ovn-metadata-proxy/)
 *            with our proxy and runs the real haproxy for everything else (haproxy.service included).
 *            With --kill-script also <kill_scripts_path>/haproxy-kill, for releases whose rootwrap checks
 *            the executable of what it kills (neutron up to Yoga; from Zed, kill goes through privsep and
 *            needs no script, and Debian's rootwrap filters have no entry for one).
 *   disable: the link and our kill script removed, the diversion removed (haproxy back in place).
 *   status:  which of those is in place.
 *
 * Nothing restarts here: neutron's agents keep the processes they run until they restart them
 * (deployment.md says how to move running proxies over and back).
 */
import {
  accessSync,
  constants,
  existsSync,
  lstatSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { ProgramErrorCode } from '@nmp/common';
import { run } from '@nmp/host/command';

export interface DropInPaths {
  /** The haproxy neutron runs (rootwrap's PATH finds it here). */
  readonly haproxy: string;
  /** Our wrapper (the release tree's bin/haproxy). */
  readonly wrapper: string;
  /** metadata-hooks of the release, for the kill script. */
  readonly hooksProgram: string;
  /** neutron's [AGENT] kill_scripts_path. */
  readonly killScriptsPath: string;
  /** dpkg-divert (Debian's dpkg). */
  readonly dpkgDivert: string;
}

export const DROP_IN_DEFAULTS = Object.freeze({
  haproxy: '/usr/sbin/haproxy',
  killScriptsPath: '/etc/neutron/kill_scripts',
  dpkgDivert: '/usr/bin/dpkg-divert',
});

/** The diversion's package: the one that ships the wrapper (so `dpkg -r nmp` knows to undo it). */
const PACKAGE = 'nmp';
const KILL_MARK =
  '# nmp haproxy drop-in (metadata-hooks haproxy-drop-in): removed by `haproxy-drop-in disable`.';

export class DropInError extends Error {
  readonly code = 'MDH_ERR_DROP_IN' satisfies ProgramErrorCode;
  override readonly name = 'DropInError';
}

export interface DropInState {
  /** `nmp`, another package's name, `LOCAL`, or undefined when haproxy is not diverted. */
  readonly divertedBy?: string;
  readonly realHaproxy: string;
  readonly realHaproxyPresent: boolean;
  /** /usr/sbin/haproxy is our link. */
  readonly linked: boolean;
  readonly killScript: 'ours' | 'foreign' | 'none';
  /** Everything in place (`enabled`), nothing (`disabled`), or something in between. */
  readonly state: 'enabled' | 'disabled' | 'partial';
}

export const realHaproxyPath = (p: DropInPaths) => `${p.haproxy}.nmp-real`;
const killScriptPath = (p: DropInPaths) => join(p.killScriptsPath, 'haproxy-kill');

async function divertedBy(p: DropInPaths): Promise<string | undefined> {
  if (!existsSync(p.dpkgDivert)) return undefined;
  const r = await run([p.dpkgDivert, '--listpackage', p.haproxy]);
  const owner = r.stdout.trim();
  return owner === '' ? undefined : owner;
}

function isOurLink(p: DropInPaths): boolean {
  try {
    return lstatSync(p.haproxy).isSymbolicLink() && readlinkSync(p.haproxy) === p.wrapper;
  } catch {
    return false;
  }
}

function killScriptState(p: DropInPaths): DropInState['killScript'] {
  try {
    return readFileSync(killScriptPath(p), 'utf8').includes(KILL_MARK) ? 'ours' : 'foreign';
  } catch {
    return 'none';
  }
}

export async function dropInState(p: DropInPaths): Promise<DropInState> {
  const by = await divertedBy(p);
  const linked = isOurLink(p);
  const killScript = killScriptState(p);
  const ours = by === PACKAGE;
  const state =
    ours && linked ? 'enabled' : !ours && !linked && killScript !== 'ours' ? 'disabled' : 'partial';
  return {
    ...(by !== undefined ? { divertedBy: by } : {}),
    realHaproxy: realHaproxyPath(p),
    realHaproxyPresent: existsSync(realHaproxyPath(p)),
    linked,
    killScript,
    state,
  };
}

function requireRoot(): void {
  if (process.geteuid?.() !== 0) throw new DropInError('haproxy-drop-in changes /usr/sbin: run it as root');
}

export async function enableDropIn(
  p: DropInPaths,
  o: { readonly killScript: boolean },
  say: (m: string) => void,
): Promise<void> {
  requireRoot();
  if (!existsSync(p.dpkgDivert))
    throw new DropInError(
      `${p.dpkgDivert} not found: the one-command switch needs dpkg; elsewhere put the release's bin/haproxy ` +
        "first in rootwrap's exec_dirs (docs/deployment.md, section 6)",
    );
  try {
    accessSync(p.wrapper, constants.X_OK);
  } catch {
    throw new DropInError(`${p.wrapper} is missing or not executable: is the nmp package installed?`);
  }
  const by = await divertedBy(p);
  if (by !== undefined && by !== PACKAGE)
    throw new DropInError(
      `${p.haproxy} is already diverted by '${by}' (dpkg-divert --list): not touching it`,
    );
  if (by === undefined) {
    if (!existsSync(p.haproxy))
      say(`warning: ${p.haproxy} does not exist; configs other than neutron's metadata proxies will fail`);
    await run([
      p.dpkgDivert,
      '--package',
      PACKAGE,
      '--add',
      '--rename',
      '--divert',
      realHaproxyPath(p),
      p.haproxy,
    ]);
    say(`diverted ${p.haproxy} to ${realHaproxyPath(p)}`);
  }
  if (!isOurLink(p)) {
    rmSync(p.haproxy, { force: true });
    symlinkSync(p.wrapper, p.haproxy);
    say(`linked ${p.haproxy} -> ${p.wrapper}`);
  }
  if (o.killScript) {
    const state = killScriptState(p);
    if (state === 'foreign')
      throw new DropInError(`${killScriptPath(p)} exists and is not ours: not replacing it`);
    if (state === 'none') {
      if (!existsSync(p.killScriptsPath))
        throw new DropInError(`${p.killScriptsPath} does not exist (neutron's [AGENT] kill_scripts_path)`);
      writeFileSync(
        killScriptPath(p),
        `#!/bin/sh\n${KILL_MARK}\n# Signals only processes that are nmp's ns-metadata-proxy.\nexec ${p.hooksProgram} haproxy-kill "$@"\n`,
        { mode: 0o755 },
      );
      say(
        `wrote ${killScriptPath(p)} (needs a rootwrap filter: haproxy_kill: CommandFilter, haproxy-kill, root)`,
      );
    }
  }
  say(
    'haproxy drop-in enabled. Proxies neutron starts from now on are ours; running haproxies stay until ' +
      'neutron restarts them (systemctl restart neutron-dhcp-agent; per router, see docs/deployment.md section 6).',
  );
}

export async function disableDropIn(p: DropInPaths, say: (m: string) => void): Promise<void> {
  const before = await dropInState(p);
  if (before.state === 'disabled') return;
  requireRoot();
  if (before.killScript === 'ours') {
    rmSync(killScriptPath(p), { force: true });
    say(`removed ${killScriptPath(p)}`);
  }
  if (before.linked) {
    rmSync(p.haproxy, { force: true });
    say(`removed the link ${p.haproxy}`);
  }
  if (before.divertedBy === PACKAGE) {
    await run([
      p.dpkgDivert,
      '--package',
      PACKAGE,
      '--remove',
      '--rename',
      '--divert',
      realHaproxyPath(p),
      p.haproxy,
    ]);
    say(`${p.haproxy} is haproxy again`);
  }
  say(
    'haproxy drop-in disabled. ns-metadata-proxy processes neutron started keep serving until neutron ' +
      'restarts them, as haproxy now (systemctl restart neutron-dhcp-agent neutron-l3-agent).',
  );
}

export function formatDropInState(s: DropInState, p: DropInPaths): string[] {
  return [
    `haproxy drop-in: ${s.state}`,
    `  ${p.haproxy}: ${s.linked ? `link to ${p.wrapper}` : 'not ours'}`,
    `  diversion: ${s.divertedBy === undefined ? 'none' : `by ${s.divertedBy} to ${s.realHaproxy}${s.realHaproxyPresent ? '' : ' (missing)'}`}`,
    `  kill script ${killScriptPath(p)}: ${s.killScript}`,
  ];
}
