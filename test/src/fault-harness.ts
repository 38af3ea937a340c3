/*
 * Harness for the chain-level fault, soak, secrets and shutdown tests: the real CLIs (dev Nova, agent,
 * proxy) as child processes on loopback ports and a UNIX socket in a temp dir, a bounded keep-alive load
 * generator, and /proc sampling of each process. Every process is killed in t.after, whatever happened.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = {
  nova: join(ROOT, 'packages/nova-metadata-dev/dist/src/cli.js'),
  agent: join(ROOT, 'packages/metadata-agent/dist/src/cli.js'),
  proxy: join(ROOT, 'packages/ns-metadata-proxy/dist/src/cli.js'),
} as const;
export const SAMPLE_INVENTORY = join(ROOT, 'packages/nova-metadata-dev/sample/inventory.json');
/** The sample network: 127.0.0.1 (and ::1) is instance 6f4c1a52-... on it. */
export const SAMPLE_NETWORK = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
export const SAMPLE_INSTANCE = '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function tempDir(t: TestContext, prefix = 'nmp-fault-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A port free right now on the loopback (listen on 0, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const OUTPUT_KEEP = 4 * 1024 * 1024;

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout + stderr so far (the last 4 MiB). */
  output(): string;
  /** When the chain's start function saw it ready (ms since the epoch, output arrival time). */
  readyAt?: number;
  /** Every `"code":"..."` value the process has logged since it started (not subject to the 4 MiB). */
  readonly codes: ReadonlySet<string>;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /**
   * Wait until the output matches, or fail after timeoutMs with the output so far. Resolves with the
   * time (ms since the epoch) the matching output arrived.
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<number>;
}

/** Spawn a CLI with node; it is SIGKILLed in t.after unless it has exited by then. */
export function spawnCli(
  t: TestContext,
  name: string,
  cli: string,
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): Proc {
  const child = spawn(process.execPath, [cli, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...cleanEnv(), ...env },
  });
  let out = '';
  const codes = new Set<string>();
  /** Arrival time of each chunk's end offset in the whole output, for waitFor(). */
  let total = 0;
  const arrivals: Array<[number, number]> = [];
  const collect = (d: Buffer) => {
    const text = d.toString();
    total += text.length;
    arrivals.push([total, Date.now()]);
    if (arrivals.length > 10_000) arrivals.splice(0, 5_000);
    // Scan with a little of what came before, so a code split across chunks is still seen.
    for (const m of (out.slice(-100) + text).matchAll(/"code":"([A-Za-z0-9_]+)"/g)) codes.add(m[1]!);
    out += text;
    if (out.length > OUTPUT_KEEP) out = out.slice(out.length - OUTPUT_KEEP / 2);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let exitedFlag = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      exitedFlag = true;
      resolve(code ?? signal ?? 'unknown');
    });
  });
  t.after(() => {
    if (!exitedFlag) child.kill('SIGKILL');
    return exited.then(() => undefined);
  });
  const proc: Proc = {
    name,
    child,
    pid: child.pid!,
    output: () => out,
    codes,
    exited,
    async waitFor(pattern, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const m = pattern.exec(out);
        if (m) {
          const offset = total - out.length + m.index + m[0].length;
          return arrivals.find(([until]) => until >= offset)?.[1] ?? Date.now();
        }
        if (exitedFlag) throw new Error(`${name} exited before ${pattern}:\n${out}`);
        if (Date.now() > end) throw new Error(`${name}: no ${pattern} within ${timeoutMs} ms:\n${out}`);
        await sleep(20);
      }
    },
  };
  return proc;
}

/** The test's environment without any NMP_* setting that could leak into a child. */
function cleanEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NMP_')) env[k] = v;
  return env;
}

export interface ChainOptions {
  readonly secret?: string;
  /** Extra agent flags (e.g. a short Nova timeout). */
  readonly agentArgs?: readonly string[];
  readonly proxyArgs?: readonly string[];
  readonly agentEnv?: Record<string, string>;
  /** Skip starting Nova (tests that bring their own). */
  readonly novaPort?: number;
}

export interface Chain {
  readonly dir: string;
  readonly socketPath: string;
  readonly novaPort: number;
  readonly proxyPort: number;
  readonly proxyUrl: string;
  nova: Proc | undefined;
  agent: Proc;
  proxy: Proc;
  startNova(): Promise<Proc>;
  startAgent(): Promise<Proc>;
  startProxy(): Promise<Proc>;
}

/** dev Nova + agent (inventory resolver) + proxy (network mode) on fresh ports, all ready. */
export async function startChain(t: TestContext, options: ChainOptions = {}): Promise<Chain> {
  const dir = tempDir(t);
  const socketPath = join(dir, 'agent.sock');
  const secret = options.secret ?? 'fault-test-secret';
  const novaPort = options.novaPort ?? (await freePort());
  const proxyPort = await freePort();
  const chain: Chain = {
    dir,
    socketPath,
    novaPort,
    proxyPort,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    nova: undefined,
    agent: undefined as unknown as Proc,
    proxy: undefined as unknown as Proc,
    async startNova() {
      const p = spawnCli(t, 'nova', CLI.nova, ['--port', String(novaPort), '--log-level', 'warn'], {
        NMP_METADATA_PROXY_SHARED_SECRET: secret,
      });
      p.readyAt = await p.waitFor(/listening on http/);
      chain.nova = p;
      return p;
    },
    async startAgent() {
      const p = spawnCli(
        t,
        'agent',
        CLI.agent,
        [
          '--resolver',
          'inventory',
          '--inventory-file',
          SAMPLE_INVENTORY,
          '--metadata-proxy-socket',
          socketPath,
          '--nova-metadata-port',
          String(novaPort),
          '--nova-metadata-timeout',
          '1',
          ...(options.agentArgs ?? []),
        ],
        { NMP_METADATA_PROXY_SHARED_SECRET: secret, ...options.agentEnv },
      );
      p.readyAt = await p.waitFor(/metadata-agent listening/);
      chain.agent = p;
      return p;
    },
    async startProxy() {
      const p = spawnCli(t, 'proxy', CLI.proxy, [
        '--bind',
        `127.0.0.1:${proxyPort}`,
        '--network-id',
        SAMPLE_NETWORK,
        '--metadata-proxy-socket',
        socketPath,
        '--timeout-server',
        '2',
        ...(options.proxyArgs ?? []),
      ]);
      p.readyAt = await p.waitFor(/ns-metadata-proxy listening/);
      chain.proxy = p;
      return p;
    },
  };
  if (options.novaPort === undefined) await chain.startNova();
  await chain.startAgent();
  await chain.startProxy();
  return chain;
}

/** RSS (kB) and open file descriptors of a process, from /proc. */
export function procStats(pid: number): { rssKb: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return { rssKb: rss ? Number(rss[1]) : 0, fds: readdirSync(`/proc/${pid}/fd`).length };
}

export interface Outcome {
  /** Milliseconds since the load started, when the answer (or the failure) came. */
  readonly at: number;
  /**
   * When the request was sent (ms since the load started). On a busy machine an answer given before a
   * fault may reach the client well after it: a window of the fault is the requests sent inside it.
   */
  readonly sent: number;
  /** HTTP status, or the error code when no answer came (a hang is 'timeout'). */
  readonly result: number | string;
}

export interface Load {
  /** Stop issuing requests; resolves when every worker has its last answer. */
  stop(): Promise<void>;
  /**
   * Resolves once `n` requests succeeded (a steady state to break), or rejects after `timeoutMs`: on a
   * busy machine the chain may take longer than usual to warm up, and a fixed sleep then breaks nothing.
   */
  successes(n: number, timeoutMs: number): Promise<void>;
  readonly outcomes: Outcome[];
  readonly started: number;
}

/**
 * `connections` workers on as many keep-alive connections, each sending GET `path` back to back until
 * stopped (or `maxMs`), each request bounded by `timeoutMs`. A 5xx is followed by a short pause, as a
 * real client would back off, so an outage is not a busy loop.
 */
export function startLoad(
  url: string,
  options: { connections?: number; path?: string; timeoutMs?: number; maxMs?: number } = {},
): Load {
  const connections = options.connections ?? 50;
  const timeoutMs = options.timeoutMs ?? 3000;
  const pool = new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 10_000 });
  const outcomes: Outcome[] = [];
  const started = Date.now();
  const deadline = started + (options.maxMs ?? 60_000);
  let stopping = false;
  const worker = async () => {
    while (!stopping && Date.now() < deadline) {
      let result: number | string;
      const sent = Date.now() - started;
      try {
        const res = await pool.request({
          method: 'GET',
          path: options.path ?? '/latest/meta-data/instance-id',
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          signal: AbortSignal.timeout(timeoutMs + 500),
        });
        await res.body.arrayBuffer();
        result = res.statusCode;
      } catch (err) {
        const e = err as { code?: string; name?: string };
        result =
          e.code === 'UND_ERR_HEADERS_TIMEOUT' ||
          e.code === 'UND_ERR_BODY_TIMEOUT' ||
          e.name === 'TimeoutError'
            ? 'timeout'
            : (e.code ?? e.name ?? 'error');
      }
      outcomes.push({ at: Date.now() - started, sent, result });
      if (typeof result !== 'number' || result >= 500) await sleep(10);
    }
  };
  const workers = Array.from({ length: connections }, worker);
  let stopped: Promise<void> | undefined;
  return {
    outcomes,
    started,
    async successes(n, timeoutMs) {
      const until = Date.now() + timeoutMs;
      while (outcomes.filter((o) => o.result === 200).length < n) {
        if (Date.now() > until)
          throw new Error(
            `only ${tally(outcomes)['200'] ?? 0} successes in ${timeoutMs} ms: ${JSON.stringify(tally(outcomes))}`,
          );
        await sleep(50);
      }
    },
    stop() {
      stopping = true;
      stopped ??= Promise.all(workers).then(() => pool.close());
      return stopped;
    },
  };
}

/** Count outcomes by result. */
export function tally(outcomes: readonly Outcome[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) out[String(o.result)] = (out[String(o.result)] ?? 0) + 1;
  return out;
}
