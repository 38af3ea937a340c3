/*
 * Drop-in for neutron's `haproxy` (reference.md §2.4): neutron's DHCP/L3 agents run
 * `ip netns exec <ns> haproxy -f <state_path>/ns-metadata-proxy/<id>.conf` and expect haproxy to
 * daemonise, write the config's `pidfile`, and later die on SIGTERM. A `haproxy` in rootwrap's exec_dirs
 * that runs `metadata-hooks haproxy-compat "$@"` (or a symlink named haproxy to this CLI) does that with
 * our proxy: the config is validated, `ns-metadata-proxy --haproxy-config <file>` is started detached in
 * the current namespace, and we exit 0 once its pid file names a live process (it writes it once
 * listening), or 1 with the proxy's output when it fails.
 *
 * `haproxy-kill <signal> <pid>` is the matching kill script for `<kill_scripts_path>/haproxy-kill`: rootwrap's
 * KillFilter for haproxy checks the executable name, which for our proxy is node, so neutron needs it.
 */
import { lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileSize, logTail, processInfo, readPidFile, startDetached } from '@nmp/host';
import { type HaproxyMetadataConfig, readHaproxyConfig } from '@nmp/ns-metadata-proxy/haproxy-config';

export interface HaproxyCompatArgs {
  readonly configFiles: readonly string[];
  readonly checkOnly: boolean;
  readonly version: boolean;
  /** `-p <pidfile>` overrides the config's pidfile. */
  readonly pidFile?: string;
}

/** haproxy's flags as neutron and operators use them; anything else is an error. */
export function parseHaproxyArgs(argv: readonly string[]): HaproxyCompatArgs {
  const configFiles: string[] = [];
  let checkOnly = false;
  let version = false;
  let pidFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-f') {
      const f = argv[++i];
      if (!f) throw new Error('-f needs a file');
      configFiles.push(f);
    } else if (a === '-p') {
      pidFile = argv[++i];
      if (!pidFile) throw new Error('-p needs a file');
    } else if (a === '-c') checkOnly = true;
    else if (a === '-v' || a === '-vv' || a === '-V') version = true;
    else if (a === '-D' || a === '-db' || a === '-q' || a === '-Ws' || a === '-W') {
      // Daemon/foreground/quiet/master-worker flags: we always behave like `-D` (detach after ready).
    } else throw new Error(`unsupported haproxy option '${a}' (supported: -f FILE, -c, -p FILE, -v)`);
  }
  if (!version && configFiles.length !== 1) throw new Error('exactly one -f <config file> is required');
  return { configFiles, checkOnly, version, ...(pidFile ? { pidFile } : {}) };
}

export type ParsedHaproxy = HaproxyMetadataConfig;

/** Validate `file` with the proxy's own parser (the one `ns-metadata-proxy --haproxy-config` runs). */
export function checkHaproxyConfig(file: string): Promise<ParsedHaproxy> {
  return readHaproxyConfig(file);
}

export interface CompatLaunch {
  /** Program that runs the proxy: [node, cli.js] or [executable]. */
  readonly program: readonly string[];
  readonly configFile: string;
  readonly pidFile: string;
  readonly timeoutMs: number;
  readonly logFile: string;
}

/** Start the proxy detached from a haproxy config; resolve with its pid once it is ready. */
export async function startFromHaproxyConfig(l: CompatLaunch): Promise<number> {
  mkdirSync(dirname(l.logFile), { recursive: true });
  if (dirname(l.logFile) === dirname(l.configFile)) removeOrphanLogs(l.configFile);
  const logStart = fileSize(l.logFile);
  const before = readPidFile(l.pidFile);
  if (before !== undefined && !processInfo(before).alive) rmSync(l.pidFile, { force: true });
  // neutron's environment may hold secrets; the proxy needs none (startDetached leaves them out).
  const child = startDetached(
    [...l.program, '--haproxy-config', l.configFile, '--pid-file', l.pidFile],
    l.logFile,
  );
  const deadline = Date.now() + l.timeoutMs;
  for (;;) {
    const pid = readPidFile(l.pidFile);
    if (pid !== undefined && pid !== before && processInfo(pid).alive) return pid;
    const exited = child.ended();
    if (exited !== undefined || Date.now() >= deadline) {
      const tail = logTail(l.logFile, logStart);
      throw new Error(
        `ns-metadata-proxy ${exited !== undefined ? `exited (${exited})` : `did not write ${l.pidFile} in time`}` +
          (tail ? `:\n${tail}` : ''),
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SIGNALS: Readonly<Record<string, NodeJS.Signals>> = {
  '1': 'SIGHUP',
  '9': 'SIGKILL',
  '15': 'SIGTERM',
  HUP: 'SIGHUP',
  KILL: 'SIGKILL',
  TERM: 'SIGTERM',
};

/**
 * `haproxy-kill <signal> <pid>`: send the signal only if `pid` is one of our proxies (its command line
 * names ns-metadata-proxy), so the script cannot be used to kill anything else. neutron destroys a proxy
 * with TERM (KILL after 5 s) and then deletes its config; with TERM or KILL the drop-in's log of that
 * proxy (`<config>.log`, what haproxy-compat made its output) goes too, or nothing would ever remove it.
 */
export function haproxyKill(signalText: string, pidText: string): void {
  const key = signalText.replace(/^-/, '').replace(/^SIG/i, '').toUpperCase();
  const sig = SIGNALS[key];
  if (!sig) throw new Error(`unsupported signal '${signalText}' (HUP, TERM, KILL or 1, 9, 15)`);
  if (!/^\d+$/.test(pidText)) throw new Error(`invalid pid '${pidText}'`);
  const pid = Number(pidText);
  const info = processInfo(pid);
  if (!info.alive) throw new Error(`no process ${pid}`);
  const cmdline = info.cmdline.join(' ');
  if (!cmdline.includes('ns-metadata-proxy'))
    throw new Error(`process ${pid} is not an ns-metadata-proxy; refusing to signal it`);
  const log = sig === 'SIGHUP' ? undefined : compatLogOf(pid, cmdline);
  process.kill(pid, sig);
  // The proxy may still write its last lines while it stops: into the unlinked file, freed at its exit.
  if (log !== undefined) rmSync(log, { force: true });
}

/**
 * The drop-in's log of proxy `pid`: the regular file its stdout goes to, when that is named after the
 * config the proxy runs from (`<config>.log`, in any directory: NMP_HAPROXY_COMPAT_LOG_DIR may move it).
 * Anything else (a terminal, the journal, a file of another name) is not ours to remove.
 */
function compatLogOf(pid: number, cmdline: string): string | undefined {
  // The proxy's title: `ns-metadata-proxy <mode> <id> -f <config>` (see its cli.ts).
  const config = / -f (\S+)$/.exec(cmdline)?.[1];
  if (config === undefined) return undefined;
  try {
    const target = readlinkSync(`/proc/${pid}/fd/1`);
    if (basename(target) !== `${basename(config)}.log` || !lstatSync(target).isFile()) return undefined;
    return target;
  } catch {
    return undefined;
  }
}

/**
 * Logs beside `config` whose config is gone: left by proxies that died before neutron destroyed them
 * (neutron then deletes the config without calling the kill script). Swept when the next proxy of the
 * directory starts.
 */
export function removeOrphanLogs(config: string): string[] {
  const dir = dirname(config);
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    if (!n.endsWith('.conf.log') || names.includes(n.slice(0, -'.log'.length))) continue;
    rmSync(join(dir, n), { force: true });
    removed.push(join(dir, n));
  }
  return removed;
}
