// Starts the chain the benchmarks measure: nova-metadata-dev (TCP), metadata-agent (UNIX socket, info
// logging to a file) and ns-metadata-proxy (TCP, info logging to a file), each its own process, with a
// fresh shared secret handed over in the environment: the testkit's startChain, with the benchmarks' logging,
// profiling and A/B options on top. stop() ends them in reverse order.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SERVICE_NODE_FLAGS } from '@nmp/common';
import { type CliOptions, type Service, startChain as startTestkitChain } from '@nmp/testkit';
import {
  BARE,
  freePort,
  installSignalHook,
  NETWORK_ID,
  programsOf,
  SAMPLE_DIR,
  startNode,
  waitForConnect,
} from './lib.js';

export interface ProxyOptions {
  readonly host?: string;
  readonly port?: number;
  readonly args?: readonly string[];
  /** A command it runs under (e.g. ['ip', 'netns', 'exec', NS]); the caller then waits for it. */
  readonly wrap?: readonly string[];
  /** The id flags (default ['--network-id', NETWORK_ID]). */
  readonly identity?: readonly string[];
}

export interface BenchChainOptions {
  /** Where logs, outputs and the socket go. */
  readonly logDir: string;
  /** Nova's instances (default: the sample). */
  readonly instancesFile?: string;
  /** Resolver arguments (default: the sample inventory). */
  readonly agentArgs?: readonly string[];
  /** Extra environment of the agent (e.g. the Neutron password). */
  readonly agentEnv?: Readonly<Record<string, string>>;
  /** Run proxy, agent and Nova with --cpu-prof into this directory. */
  readonly cpuProf?: string;
  /** false: no proxy; chain.startProxy(name, sameOptions) starts another one on the same agent. */
  readonly proxy?: false | ProxyOptions;
  /** Agent and proxy log level (default info). */
  readonly logLevel?: string;
  /** Extra node flags for agent and proxy, after the services' own (SERVICE_NODE_FLAGS). */
  readonly nodeArgs?: readonly string[];
  /** A command the agent runs under (e.g. valgrind's, callgrind.ts). */
  readonly agentWrap?: readonly string[];
  /** How long each process may take to come up (default 15 s). */
  readonly startTimeoutMs?: number;
  /** Other builds' cli.js to run (an A/B of two trees; before releaseRoot's). */
  readonly cli?: { readonly agent?: string; readonly proxy?: string };
  /**
   * Run agent and proxy from this release tree (its bundles and its own node) instead of the build
   * tree; Nova always comes from the build tree.
   */
  readonly releaseRoot?: string;
}

export interface StartedProxy {
  readonly proc: Service;
  readonly port: number;
  readonly url: string;
}

export interface BenchChain {
  readonly secret: string;
  readonly logDir: string;
  readonly socketPath: string;
  readonly processes: Service[];
  readonly nova: Service;
  readonly novaPort: number;
  readonly novaUrl: string;
  readonly agent: Service;
  /** The first proxy (undefined with proxy: false). */
  readonly proxy: Service | undefined;
  readonly proxyPort: number | undefined;
  readonly proxyUrl: string | undefined;
  startProxy(name: string, options?: ProxyOptions): Promise<StartedProxy>;
  stop(graceMs?: number): Promise<void>;
}

export async function startChain(options: BenchChainOptions): Promise<BenchChain> {
  installSignalHook();
  const { logDir } = options;
  const programs = programsOf(options.releaseRoot);
  const logLevel = options.logLevel ?? 'info';
  const prof = (name: string) =>
    options.cpuProf
      ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProf, '--cpu-prof-name', `${name}.cpuprofile`]
      : [];
  // Agent and proxy run as the units and the hooks start them (the harness adds SERVICE_NODE_FLAGS);
  // extra flags come after (the last one wins).
  const proxyOptions = (name: string, p: ProxyOptions): CliOptions & ProxyOptions => ({
    ...p,
    name,
    cli: options.cli?.proxy ?? programs.proxy,
    node: programs.node,
    nodeArgs: [...(options.nodeArgs ?? []), ...prof(name)],
    identity: p.identity ?? ['--network-id', NETWORK_ID],
    args: ['--log-level', logLevel, '--log-file', join(logDir, `${name}.log`), ...(p.args ?? [])],
    startTimeoutMs: options.startTimeoutMs,
  });
  const chain = await startTestkitChain({
    dir: logDir,
    logToFiles: true,
    nova: {
      instancesFile: options.instancesFile ?? join(SAMPLE_DIR, 'instances.json'),
      nodeArgs: prof('nova'),
    },
    agent: {
      cli: options.cli?.agent ?? programs.agent,
      node: programs.node,
      resolverArgs: options.agentArgs ?? [
        '--resolver',
        'inventory',
        '--inventory-file',
        join(SAMPLE_DIR, 'inventory.json'),
      ],
      args: ['--log-level', logLevel, '--log-file', join(logDir, 'agent.log')],
      env: options.agentEnv,
      nodeArgs: [...(options.nodeArgs ?? []), ...prof('agent')],
      wrap: options.agentWrap,
      startTimeoutMs: options.startTimeoutMs,
    },
    proxy: options.proxy === false ? false : proxyOptions('proxy', options.proxy ?? {}),
  });
  return {
    secret: chain.sharedSecret,
    logDir,
    socketPath: chain.socketPath,
    processes: chain.processes,
    nova: chain.nova,
    novaPort: chain.nova.port,
    novaUrl: chain.nova.url,
    agent: chain.agent,
    proxy: chain.proxy,
    proxyPort: chain.proxy?.port,
    proxyUrl: chain.proxy?.url,
    async startProxy(name, p = {}) {
      const proc = await chain.startProxy(proxyOptions(name, p));
      return { proc, port: proc.port, url: proc.url };
    },
    async stop(graceMs) {
      for (const p of [...chain.processes].reverse()) await p.stop(graceMs);
    },
  };
}

let clockTicks: number | undefined;
/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number {
  const c = cpuTimesOf(pid);
  return c.user + c.sys;
}

function ticks(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** {user, sys} CPU seconds a process has used so far, from /proc/<pid>/stat (NaN when gone). */
export function cpuTimesOf(pid: number): { user: number; sys: number } {
  const hz = ticks();
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / hz, sys: Number(f[12]) / hz };
  } catch {
    return { user: Number.NaN, sys: Number.NaN };
  }
}

/** CPU seconds the whole machine has been busy (all cores; user, nice, system, irq, softirq, steal). */
export function machineBusySeconds(): number {
  const hz = ticks();
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return (user + nice + system + irq + softirq + steal) / hz;
  } catch {
    return Number.NaN;
  }
}

/**
 * Wait (at most `maxS` seconds) until the rest of the machine is quiet: under a quarter of a core busy over
 * half a second. Others share this machine (tests, builds); a cell measured next to them says little.
 * Returns the seconds waited (the cell runs anyway after maxS).
 */
export async function waitForQuiet(maxS: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const b0 = machineBusySeconds();
    await sleep(500);
    const busy = (machineBusySeconds() - b0) * 2;
    const waited = (Date.now() - t0) / 1000;
    if (busy < 0.25 || waited >= maxS) return waited - 0.5;
  }
}

export interface BareChainOptions {
  /** A started chain: its Nova, secret and log directory are used. */
  readonly chain: BenchChain;
  readonly inventoryFile?: string;
  /** Extra node flags, after SERVICE_NODE_FLAGS. */
  readonly nodeArgs?: readonly string[];
  /** Directory: --cpu-prof into it, bare-proxy.cpuprofile and bare-agent.cpuprofile. */
  readonly cpuProf?: string;
  /** A command each runs under, e.g. valgrind's. */
  readonly wrap?: { readonly proxy?: readonly string[]; readonly agent?: readonly string[] };
  /** Per process, default 15 s. */
  readonly startTimeoutMs?: number;
}

export interface BareChain {
  readonly processes: Service[];
  readonly agent: Service;
  readonly proxy: Service;
  readonly proxyUrl: string;
  stop(graceMs?: number): Promise<void>;
}

/**
 * The bare chain of `npm run bench -- --compare-bare` (issue 22): bare/proxy.ts (TCP) ->
 * its own UNIX socket -> bare/agent.ts -> the same Nova as `chain`, with the same secret,
 * inventory and node flags as ours, so that only the code in the two hops differs.
 */
export async function startBareChain(options: BareChainOptions): Promise<BareChain> {
  const { chain, nodeArgs = [], cpuProf, wrap = {}, startTimeoutMs } = options;
  const env = { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: chain.secret };
  const prof = (name: string) =>
    cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf, '--cpu-prof-name', `${name}.cpuprofile`] : [];
  const socketPath = join(chain.logDir, 'bare-agent.sock');
  const started: Service[] = [];
  const stop = async (graceMs?: number) => {
    for (const p of [...started].reverse()) await p.stop(graceMs);
  };
  try {
    const agent = startNode(
      'bare-agent',
      BARE.agent,
      [socketPath, options.inventoryFile ?? join(SAMPLE_DIR, 'inventory.json'), chain.novaUrl],
      {
        env,
        logDir: chain.logDir,
        nodeArgs: [...SERVICE_NODE_FLAGS, ...nodeArgs, ...prof('bare-agent')],
        wrap: wrap.agent ?? [],
      },
    );
    started.push(agent);
    await waitForConnect({ path: socketPath }, 'bare agent', {
      alive: agent.alive,
      timeoutMs: startTimeoutMs,
    });
    const port = await freePort();
    const proxy = startNode('bare-proxy', BARE.proxy, [String(port), socketPath, NETWORK_ID], {
      env,
      logDir: chain.logDir,
      nodeArgs: [...SERVICE_NODE_FLAGS, ...nodeArgs, ...prof('bare-proxy')],
      wrap: wrap.proxy ?? [],
    });
    started.push(proxy);
    await waitForConnect({ host: '127.0.0.1', port }, 'bare proxy', {
      alive: proxy.alive,
      timeoutMs: startTimeoutMs,
    });
    return { processes: started, agent, proxy, proxyUrl: `http://127.0.0.1:${port}`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
