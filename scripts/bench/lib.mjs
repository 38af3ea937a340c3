// Shared pieces of the benchmarks: starting and stopping the chain's processes, waiting for them,
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
import { createConnection, createServer } from 'node:net';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const RESULTS_DIR = join(ROOT, 'bench-results');
export const SAMPLE_DIR = join(ROOT, 'packages/nova-metadata-dev/sample');
export const NETWORK_ID = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
/** Sample instance A: owns 127.0.0.1 in the sample inventory. */
export const INSTANCE_A = {
  uuid: '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10',
  projectId: 'c0ffee00aabbccddeeff001122334455',
};
export const CLI = {
  nova: join(ROOT, 'packages/nova-metadata-dev/dist/src/cli.js'),
  agent: join(ROOT, 'packages/metadata-agent/dist/src/cli.js'),
  proxy: join(ROOT, 'packages/ns-metadata-proxy/dist/src/cli.js'),
};
/** The bare chain of `npm run bench -- --compare-bare` (issue 22). */
export const BARE = {
  proxy: join(ROOT, 'scripts/bench/bare/proxy.mjs'),
  agent: join(ROOT, 'scripts/bench/bare/agent.mjs'),
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A directory under bench-results/ (created). */
export function resultsDir(...parts) {
  const dir = join(RESULTS_DIR, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A timestamp usable in file names: 2026-11-23T04-05-06. */
export function stamp(d = new Date()) {
  return d.toISOString().slice(0, 19).replaceAll(':', '-');
}

/** A free TCP port on 127.0.0.1 (closed again before returning; good enough on a quiet machine). */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolve once something accepts connections at `target` ({host, port} or {path}). */
export function waitForConnect(target, what, { timeoutMs = 15_000, alive = () => true } = {}) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = createConnection(target);
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        const why = alive();
        if (why !== true) return reject(new Error(`${what} is not running: ${why}`));
        if (Date.now() > deadline) return reject(new Error(`${what} did not come up within ${timeoutMs} ms`));
        setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

const live = new Set();
let exitHookInstalled = false;

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: never leave a server of ours running when the harness dies.
  process.on('exit', () => {
    for (const p of live) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping\n`);
      process.exit(130);
    });
  }
}

/**
 * The agent's and the proxy's CLI and the node that runs them: this build tree's, or a release tree's
 * (an unpacked tarball or /usr/lib/nmp: its bundles at the same paths, its own runtime in bin/node).
 */
export function programsOf(releaseRoot) {
  if (releaseRoot === undefined) return { node: process.execPath, agent: CLI.agent, proxy: CLI.proxy };
  return {
    node: join(releaseRoot, 'bin', 'node'),
    agent: join(releaseRoot, 'packages/metadata-agent/dist/src/cli.js'),
    proxy: join(releaseRoot, 'packages/ns-metadata-proxy/dist/src/cli.js'),
  };
}

/**
 * Start a long-running node program. stdout/stderr go to `<logDir>/<name>.out` (a file, so that a full
 * pipe never slows it down). Returns a handle with pid, stop() and a description of how it died, if it did.
 */
export function startNode(
  name,
  script,
  args,
  { env = process.env, logDir, nodeArgs = [], wrap = [], node = process.execPath } = {},
) {
  installExitHook();
  const outFile = join(logDir, `${name}.out`);
  const fd = openSync(outFile, 'a');
  const argv = [...wrap, node, ...nodeArgs, script, ...args];
  const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      live.delete(handle);
      resolve(exited);
    });
    child.once('error', (err) => {
      exited = { code: -1, signal: null, error: err.message };
      live.delete(handle);
      resolve(exited);
    });
  });
  const handle = {
    name,
    pid: child.pid,
    child,
    outFile,
    /** true while running, else a reason with the tail of its output. */
    alive() {
      if (exited === null) return true;
      return `exited (${exited.signal ?? exited.code}); output:\n${tail(outFile)}`;
    },
    exited: () => exitPromise,
    /** SIGTERM, SIGKILL after graceMs; resolves when gone. */
    async stop(graceMs = 5000) {
      if (exited !== null) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => {
        if (exited === null) child.kill('SIGKILL');
      }, graceMs);
      const r = await exitPromise;
      clearTimeout(t);
      return r;
    },
  };
  live.add(handle);
  return handle;
}

export function tail(file, lines = 20) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

/** VmRSS, VmHWM (peak RSS), RssAnon, RssFile and PSS of a process, in KiB (NaN/undefined when unreadable). */
export function memoryOf(pid) {
  const out = {};
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
export function machineInfo() {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1].trim();
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

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Run one load in its own process (scripts/bench/load-worker.mjs), optionally wrapped (e.g. `ip netns exec
 * NS`). `spec`: {url, connections, durationS, headers?, expect?}. Resolves to the worker's JSON result.
 */
export function runLoad(spec, { wrap = [], timeoutMs } = {}) {
  const worker = fileURLToPath(new URL('./load-worker.mjs', import.meta.url));
  const argv = [...wrap, process.execPath, worker, JSON.stringify(spec)];
  const limit = timeoutMs ?? (spec.durationS + 30) * 1000;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
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
        resolve(JSON.parse(line));
      } catch (e) {
        reject(new Error(`load worker failed (${e.message}):\n${err.slice(-4000)}${out.slice(-2000)}`));
      }
    });
  });
}

/** Plain-text table with right-aligned numeric columns. */
export function textTable(header, rows) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

/** Markdown table. */
export function mdTable(header, rows, align) {
  const a = align ?? header.map((_, i) => (i === 0 ? 'l' : 'r'));
  return [
    `| ${header.join(' | ')} |`,
    `| ${a.map((x) => (x === 'l' ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

export const fmt = {
  int: (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'),
  ms: (n) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : 'n/a'),
  mb: (kb) => (Number.isFinite(kb) ? (kb / 1024).toFixed(1) : 'n/a'),
  ratio: (n) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a'),
};

export function requireBuilt() {
  for (const [name, file] of Object.entries(CLI)) {
    if (!existsSync(file)) throw new Error(`${name} is not built (${file}); run npx tsc -b first`);
  }
}

/**
 * Shrink the request logs a run leaves (info logging writes a line per request: hundreds of MB per full
 * run) to their first 50 and last `keep` lines, noting how much was dropped. Files under `limitBytes` stay whole.
 */
export function trimLogs(dir, { keep = 2000, limitBytes = 8 * 2 ** 20 } = {}) {
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

function readSyncAt(fd, buf, position) {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) break;
    off += n;
  }
}
