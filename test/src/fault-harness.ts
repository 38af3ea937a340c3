/*
 * Harness for the chain-level fault, soak, secrets and shutdown tests: the real CLIs (dev Nova, agent,
 * proxy) as child processes on loopback ports and a UNIX socket in a temp dir, a bounded keep-alive load
 * generator, and /proc sampling of each process. Every process is killed in t.after, whatever happened.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  CLI,
  freePort,
  SAMPLE_INSTANCE,
  SAMPLE_INVENTORY_FILE,
  SAMPLE_NETWORK,
  type Service,
  SOURCE_ROOT,
  serviceEnv,
  sleep,
  spawnService,
  startAgentCli,
  startNovaCli,
  startProxyCli,
  tempDir as testkitTempDir,
} from '@nmp/testkit';
import { Pool } from 'undici';

export const ROOT = SOURCE_ROOT;
export { CLI, freePort, SAMPLE_INSTANCE, SAMPLE_NETWORK, sleep };
export const SAMPLE_INVENTORY = SAMPLE_INVENTORY_FILE;
export type Proc = Service;

export function tempDir(t: TestContext, prefix = 'nmp-fault-'): string {
  return testkitTempDir(t, prefix);
}

/** Spawn a CLI with node (no NMP_* setting of ours leaks in); it is SIGKILLed in t.after unless it has exited. */
export function spawnCli(
  t: TestContext,
  name: string,
  cli: string,
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): Proc {
  return spawnService(name, cli, args, { t, env: serviceEnv(env) });
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

/**
 * dev Nova + agent (inventory resolver) + proxy (network mode) on fresh ports, all ready; each can be
 * started again (after a kill) on the same port and socket.
 */
export async function startChain(t: TestContext, options: ChainOptions = {}): Promise<Chain> {
  const dir = tempDir(t);
  const socketPath = join(dir, 'agent.sock');
  const sharedSecret = options.secret ?? 'fault-test-secret';
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
      chain.nova = await startNovaCli({ t, port: novaPort, sharedSecret });
      return chain.nova;
    },
    async startAgent() {
      chain.agent = await startAgentCli({
        t,
        socketPath,
        novaPort,
        sharedSecret,
        args: ['--nova-metadata-timeout', '1', ...(options.agentArgs ?? [])],
        env: options.agentEnv,
      });
      return chain.agent;
    },
    async startProxy() {
      chain.proxy = await startProxyCli({
        t,
        socketPath,
        port: proxyPort,
        args: ['--timeout-server', '2', ...(options.proxyArgs ?? [])],
      });
      return chain.proxy;
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
