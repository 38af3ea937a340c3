// Shared pieces of the benchmarks: starting and stopping the chain's processes (the testkit's harness),
// reading their memory from /proc, machine facts, the load worker (its own process), medians and tables.
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  freePort,
  SAMPLE_INSTANCE,
  SAMPLE_NETWORK,
  SAMPLE_PROJECT,
  type Service,
  SOURCE_ROOT,
  spawnService,
  CLI as TESTKIT_CLI,
  tail,
  waitForConnect,
} from '@nmp/testkit';

export type { Service };
export { freePort, tail, waitForConnect };

export const ROOT = SOURCE_ROOT;
/** The compiled benchmark programs (packages/bench/dist/src/, where this file runs from). */
export const BENCH_DIST = fileURLToPath(new URL('.', import.meta.url));
export const RESULTS_DIR = join(ROOT, 'bench-results');
export const SAMPLE_DIR = join(ROOT, 'packages/nova-metadata-dev/sample');
export const NETWORK_ID = SAMPLE_NETWORK;
/** Sample instance A: owns 127.0.0.1 in the sample inventory. */
export const INSTANCE_A = { uuid: SAMPLE_INSTANCE, projectId: SAMPLE_PROJECT };
export const CLI = { nova: TESTKIT_CLI.nova, agent: TESTKIT_CLI.agent, proxy: TESTKIT_CLI.proxy };
/** The bare chain of `npm run bench -- --compare-bare` (issue 22). */
export const BARE = {
  proxy: join(BENCH_DIST, 'bare/proxy.js'),
  agent: join(BENCH_DIST, 'bare/agent.js'),
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A directory under bench-results/ (created). */
export function resultsDir(...parts: string[]): string {
  const dir = join(RESULTS_DIR, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A timestamp usable in file names: 2026-11-23T04-05-06. */
export function stamp(d = new Date()): string {
  return d.toISOString().slice(0, 19).replaceAll(':', '-');
}

let signalHook = false;

/** A bench interrupted (Ctrl-C) exits, and the harness's exit hook kills every server it started. */
export function installSignalHook(): void {
  if (signalHook) return;
  signalHook = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping\n`);
      process.exit(130);
    });
  }
}

/**
 * Run `cleanup` (synchronous: it may be called from process.on('exit')) whenever the bench ends: at exit, on
 * SIGINT/SIGTERM (then exit 130), and after `maxSeconds` (then exit 1, saying so as `name`).
 */
export function cleanUpOnExit(name: string, maxSeconds: number, cleanup: () => void): void {
  process.once('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up\n`);
      cleanup();
      process.exit(130);
    });
  setTimeout(() => {
    process.stderr.write(`${name}: over --max-seconds ${maxSeconds}: aborting\n`);
    cleanup();
    process.exit(1);
  }, maxSeconds * 1000).unref();
}

/** The agent's and the proxy's CLI and the node that runs them. */
export interface Programs {
  readonly node: string;
  readonly agent: string;
  readonly proxy: string;
}

/**
 * The agent's and the proxy's CLI and the node that runs them: this build tree's, or a release tree's
 * (an unpacked tarball or /usr/lib/nmp: its bundles at the same paths, its own runtime in bin/node).
 */
export function programsOf(releaseRoot?: string): Programs {
  if (releaseRoot === undefined) return { node: process.execPath, agent: CLI.agent, proxy: CLI.proxy };
  return {
    node: join(releaseRoot, 'bin', 'node'),
    agent: join(releaseRoot, 'packages/metadata-agent/dist/src/cli.js'),
    proxy: join(releaseRoot, 'packages/ns-metadata-proxy/dist/src/cli.js'),
  };
}

export interface StartNodeOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly logDir: string;
  readonly nodeArgs?: readonly string[];
  readonly wrap?: readonly string[];
  readonly node?: string;
}

/**
 * Start a long-running node program (the testkit's spawnService). stdout/stderr go to `<logDir>/<name>.out`
 * (a file, so that a full pipe never slows it down). The handle has pid, alive(), stop(graceMs).
 */
export function startNode(
  name: string,
  script: string,
  args: readonly string[],
  options: StartNodeOptions,
): Service {
  installSignalHook();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.env ?? process.env)) if (v !== undefined) env[k] = v;
  return spawnService(name, script, args, {
    env,
    nodeArgs: options.nodeArgs,
    wrap: options.wrap,
    node: options.node,
    outFile: join(options.logDir, `${name}.out`),
  });
}

/** VmRSS, VmHWM (peak RSS), RssAnon, RssFile and PSS of a process, in KiB (NaN/undefined when unreadable). */
export interface Memory {
  rssKb?: number;
  hwmKb?: number;
  anonKb?: number;
  fileKb?: number;
  pssKb?: number;
}

export function memoryOf(pid: number): Memory {
  const out: Memory = {};
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    out.rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1]);
    out.hwmKb = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1]);
    // RssFile is mostly node's own executable, shared by every node process; RssAnon is this process's own.
    out.anonKb = Number(/^RssAnon:\s+(\d+)/m.exec(status)?.[1]);
    out.fileKb = Number(/^RssFile:\s+(\d+)/m.exec(status)?.[1]);
  } catch {
    // gone
  }
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    out.pssKb = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1]);
  } catch {
    // not readable (kernel without smaps_rollup, or not ours)
  }
  return out;
}

/** Facts about this machine for the report. */
export interface MachineInfo {
  readonly nproc: number;
  readonly model: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
}

export function machineInfo(): MachineInfo {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1]!.trim();
  } catch {
    // keep os.cpus()
  }
  return {
    nproc: cpus().length,
    model,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
  };
}

/**
 * The ratio of two sides measured in alternating order (round 1 A then B, round 2 B then A, ...), from the
 * same-round ratios: each pair of rounds (one of each order) gives the geometric mean of its two ratios, and
 * the median of those is the figure. Whatever favours the side that runs second in a round (caches, clock
 * ramps) then cancels within a pair; with the plain median of an odd number of rounds it leans one way.
 * With an odd number of rounds the last is left out; one round gives its own ratio.
 */
export function pairedRatio(sameRound: readonly number[]): number {
  if (sameRound.length < 2) return sameRound[0] ?? Number.NaN;
  const pairs: number[] = [];
  for (let i = 0; i + 1 < sameRound.length; i += 2) pairs.push(Math.sqrt(sameRound[i]! * sameRound[i + 1]!));
  return median(pairs);
}

export function median(values: readonly unknown[]): number {
  const v = values
    .filter((x): x is number => typeof x === 'number' && Number.isFinite(x))
    .sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/**
 * Run one load in its own process (load-worker.ts), optionally wrapped (e.g. `ip netns exec
 * NS`). `spec`: {url, connections, durationS, headers?, expect?}. Resolves to the worker's JSON result.
 */
export interface LoadSpec {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  readonly headers?: Record<string, string>;
  readonly expectBody?: string;
  readonly timeoutS?: number;
  readonly tool?: string;
}

/** What load-worker.ts prints. */
export interface LoadResult {
  readonly url: string;
  readonly connections: number;
  readonly tool: string;
  readonly durationS: number;
  readonly elapsedS: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly mismatches: number;
  readonly resets: number;
  readonly rps: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly max: number | null;
  readonly mean: number | null;
  readonly loadgenCpuS: number;
}

export function runLoad(
  spec: LoadSpec,
  { wrap = [], timeoutMs }: { wrap?: readonly string[]; timeoutMs?: number } = {},
): Promise<LoadResult> {
  const worker = join(BENCH_DIST, 'load-worker.js');
  const argv = [...wrap, process.execPath, worker, JSON.stringify(spec)];
  const limit = timeoutMs ?? (spec.durationS + 30) * 1000;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), limit);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${signal ?? code}`);
        resolve(JSON.parse(line) as LoadResult);
      } catch (e) {
        reject(
          new Error(`load worker failed (${(e as Error).message}):\n${err.slice(-4000)}${out.slice(-2000)}`),
        );
      }
    });
  });
}

/** Plain-text table with right-aligned numeric columns. */
export function textTable(header: readonly unknown[], rows: readonly (readonly unknown[])[]): string {
  const all = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(all[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

/** Markdown table. */
export function mdTable(
  header: readonly unknown[],
  rows: readonly (readonly unknown[])[],
  align?: readonly ('l' | 'r')[],
): string {
  const a = align ?? header.map((_, i) => (i === 0 ? 'l' : 'r'));
  return [
    `| ${header.join(' | ')} |`,
    `| ${a.map((x) => (x === 'l' ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

type Figure = number | null | undefined;
const finite = (n: Figure): n is number => Number.isFinite(n);

export const fmt = {
  int: (n: Figure) => (finite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'),
  ms: (n: Figure) => (finite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : 'n/a'),
  mb: (kb: Figure) => (finite(kb) ? (kb / 1024).toFixed(1) : 'n/a'),
  ratio: (n: Figure) => (finite(n) ? n.toFixed(2) : 'n/a'),
};

export function requireBuilt(): void {
  for (const [name, file] of Object.entries(CLI)) {
    if (!existsSync(file)) throw new Error(`${name} is not built (${file}); run npx tsc -b first`);
  }
}

/**
 * Shrink the request logs a run leaves (info logging writes a line per request: hundreds of MB per full
 * run) to their first 50 and last `keep` lines, noting how much was dropped. Files under `limitBytes` stay whole.
 */
export function trimLogs(dir: string, { keep = 2000, limitBytes = 8 * 2 ** 20 } = {}): void {
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.log')) continue;
    const file = join(dir, f);
    const size = statSync(file).size;
    if (size <= limitBytes) continue;
    // Read only the beginning (start-up lines) and the end of the file.
    const fd = openSync(file, 'r');
    const head = Buffer.alloc(64 * 1024);
    readSyncAt(fd, head, 0);
    const buf = Buffer.alloc(Math.min(size, keep * 600));
    readSyncAt(fd, buf, size - buf.length);
    closeSync(fd);
    const first = head.toString('utf8').split('\n').slice(0, 50);
    const last = buf
      .toString('utf8')
      .split('\n')
      .slice(1)
      .slice(-keep - 1);
    writeFileSync(
      file,
      `${first.join('\n')}\n[bench: ${size} bytes of request log trimmed to its first 50 and last ${keep} lines]\n${last.join('\n')}`,
    );
  }
}

function readSyncAt(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) break;
    off += n;
  }
}
