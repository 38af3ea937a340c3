// Starts the chain the benchmarks measure: nova-metadata-dev (TCP), metadata-agent (UNIX socket, info
// logging to a file) and ns-metadata-proxy (TCP, info logging to a file), each its own process, with a
// fresh shared secret handed over in the environment. stop() ends them in reverse order.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SERVICE_NODE_FLAGS } from '@nmp/common';
import {
  BARE,
  CLI,
  freePort,
  NETWORK_ID,
  programsOf,
  SAMPLE_DIR,
  startNode,
  waitForConnect,
} from './lib.mjs';

/**
 * options:
 *  logDir         where logs, outputs and the socket go
 *  instancesFile  Nova's instances (default: the sample)
 *  agentArgs      resolver arguments (default: the sample inventory)
 *  agentEnv       extra environment of the agent (e.g. the Neutron password)
 *  cpuProf        directory: run proxy, agent and Nova with --cpu-prof into it
 *  proxy          false: no proxy; else {host?, port?, args?, wrap?, identity?} (wrap: e.g. ['ip','netns','exec',NS];
 *                 identity: the id flags, default ['--network-id', NETWORK_ID]);
 *                 chain.startProxy(name, sameOptions) starts another one on the same agent
 *  logLevel       agent and proxy log level (default info)
 *  nodeArgs       extra node flags for agent and proxy, after the services' own (SERVICE_NODE_FLAGS)
 *  agentWrap      a command the agent runs under (e.g. valgrind's, scripts/bench/callgrind.mjs)
 *  startTimeoutMs how long each process may take to come up (default 15 s)
 *  cli            {agent?, proxy?}: other builds' cli.js to run (an A/B of two trees; before releaseRoot's)
 *  releaseRoot    run agent and proxy from this release tree (its bundles and its own node) instead of
 *                 the build tree; Nova always comes from the build tree
 */
export async function startChain(options) {
  const { logDir } = options;
  const programs = programsOf(options.releaseRoot);
  const secret = randomBytes(24).toString('base64url');
  const env = { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: secret };
  // Agent and proxy run as the units and the hooks start them; extra flags come after (the last one wins).
  const extra = [...SERVICE_NODE_FLAGS, ...(options.nodeArgs ?? [])];
  const prof = (name) =>
    options.cpuProf
      ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProf, '--cpu-prof-name', `${name}.cpuprofile`]
      : [];
  const started = [];
  const chain = {
    secret,
    logDir,
    socketPath: join(logDir, 'metadata_proxy.sock'),
    processes: started,
    async stop() {
      for (const p of [...started].reverse()) await p.stop();
    },
  };
  try {
    chain.novaPort = await freePort();
    chain.nova = startNode(
      'nova',
      CLI.nova,
      [
        '--host',
        '127.0.0.1',
        '--port',
        String(chain.novaPort),
        '--instances',
        options.instancesFile ?? join(SAMPLE_DIR, 'instances.json'),
        '--log-level',
        'warn',
      ],
      { env, logDir, nodeArgs: [...prof('nova')] },
    );
    started.push(chain.nova);
    await waitForConnect({ host: '127.0.0.1', port: chain.novaPort }, 'nova-metadata-dev', {
      alive: () => chain.nova.alive(),
    });
    chain.novaUrl = `http://127.0.0.1:${chain.novaPort}`;

    chain.agent = startNode(
      'agent',
      options.cli?.agent ?? programs.agent,
      [
        '--metadata-proxy-socket',
        chain.socketPath,
        ...(options.agentArgs ?? [
          '--resolver',
          'inventory',
          '--inventory-file',
          join(SAMPLE_DIR, 'inventory.json'),
        ]),
        '--nova-metadata-host',
        '127.0.0.1',
        '--nova-metadata-port',
        String(chain.novaPort),
        '--log-level',
        options.logLevel ?? 'info',
        '--log-file',
        join(logDir, 'agent.log'),
      ],
      {
        env: { ...env, ...(options.agentEnv ?? {}) },
        logDir,
        nodeArgs: [...extra, ...prof('agent')],
        wrap: options.agentWrap ?? [],
        node: programs.node,
      },
    );
    started.push(chain.agent);
    await waitForConnect({ path: chain.socketPath }, 'metadata-agent', {
      alive: () => chain.agent.alive(),
      timeoutMs: options.startTimeoutMs,
    });

    chain.startProxy = async (name, p = {}) => {
      const port = p.port ?? (await freePort());
      const host = p.host ?? '127.0.0.1';
      const proc = startNode(
        name,
        options.cli?.proxy ?? programs.proxy,
        [
          '--bind',
          `${host}:${port}`,
          ...(p.identity ?? ['--network-id', NETWORK_ID]),
          '--metadata-proxy-socket',
          chain.socketPath,
          '--log-level',
          options.logLevel ?? 'info',
          '--log-file',
          join(logDir, `${name}.log`),
          ...(p.args ?? []),
        ],
        { env, logDir, nodeArgs: [...extra, ...prof(name)], wrap: p.wrap ?? [], node: programs.node },
      );
      started.push(proc);
      // Inside a namespace the caller waits (it knows how to look in there).
      if (!p.wrap) await waitForConnect({ host, port }, name, { alive: () => proc.alive() });
      return { proc, port, url: `http://${host}:${port}` };
    };
    if (options.proxy !== false) {
      const { proc, port, url } = await chain.startProxy('proxy', options.proxy ?? {});
      chain.proxy = proc;
      chain.proxyPort = port;
      chain.proxyUrl = url;
    }
    return chain;
  } catch (err) {
    await chain.stop();
    throw err;
  }
}

let clockTicks;
/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid) {
  const c = cpuTimesOf(pid);
  return c.user + c.sys;
}

/** {user, sys} CPU seconds a process has used so far, from /proc/<pid>/stat (NaN when gone). */
export function cpuTimesOf(pid) {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / clockTicks, sys: Number(f[12]) / clockTicks };
  } catch {
    return { user: Number.NaN, sys: Number.NaN };
  }
}

/** CPU seconds the whole machine has been busy (all cores; user, nice, system, irq, softirq, steal). */
export function machineBusySeconds() {
  cpuSecondsOf(process.pid); // sets clockTicks
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return (user + nice + system + irq + softirq + (steal ?? 0)) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

/**
 * Wait (at most `maxS` seconds) until the rest of the machine is quiet: under a quarter of a core busy over
 * half a second. Others share this machine (tests, builds); a cell measured next to them says little.
 * Returns the seconds waited (the cell runs anyway after maxS).
 */
export async function waitForQuiet(maxS) {
  const t0 = Date.now();
  for (;;) {
    const b0 = machineBusySeconds();
    await sleep(500);
    const busy = (machineBusySeconds() - b0) * 2;
    const waited = (Date.now() - t0) / 1000;
    if (busy < 0.25 || waited >= maxS) return waited - 0.5;
  }
}

/**
 * The bare chain of `npm run bench -- --compare-bare` (issue 22): scripts/bench/bare/proxy.mjs (TCP) ->
 * its own UNIX socket -> scripts/bench/bare/agent.mjs -> the same Nova as `chain`, with the same secret,
 * inventory and node flags as ours, so that only the code in the two hops differs.
 * options: chain (a started chain), inventoryFile, nodeArgs (extra, after SERVICE_NODE_FLAGS), cpuProf
 * (directory: --cpu-prof into it, bare-proxy.cpuprofile and bare-agent.cpuprofile), wrap ({proxy?, agent?}:
 * a command each runs under, e.g. valgrind's), startTimeoutMs (per process, default 15 s).
 * Returns {proxy, agent, proxyUrl, stop()}.
 */
export async function startBareChain({
  chain,
  inventoryFile,
  nodeArgs = [],
  cpuProf,
  wrap = {},
  startTimeoutMs,
}) {
  const env = { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: chain.secret };
  const prof = (name) =>
    cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf, '--cpu-prof-name', `${name}.cpuprofile`] : [];
  const socketPath = join(chain.logDir, 'bare-agent.sock');
  const started = [];
  const bare = {
    processes: started,
    async stop() {
      for (const p of [...started].reverse()) await p.stop();
    },
  };
  try {
    bare.agent = startNode(
      'bare-agent',
      BARE.agent,
      [socketPath, inventoryFile ?? join(SAMPLE_DIR, 'inventory.json'), chain.novaUrl],
      {
        env,
        logDir: chain.logDir,
        nodeArgs: [...SERVICE_NODE_FLAGS, ...nodeArgs, ...prof('bare-agent')],
        wrap: wrap.agent ?? [],
      },
    );
    started.push(bare.agent);
    await waitForConnect({ path: socketPath }, 'bare agent', {
      alive: () => bare.agent.alive(),
      timeoutMs: startTimeoutMs,
    });
    const port = await freePort();
    bare.proxy = startNode('bare-proxy', BARE.proxy, [String(port), socketPath, NETWORK_ID], {
      env,
      logDir: chain.logDir,
      nodeArgs: [...SERVICE_NODE_FLAGS, ...nodeArgs, ...prof('bare-proxy')],
      wrap: wrap.proxy ?? [],
    });
    started.push(bare.proxy);
    await waitForConnect({ host: '127.0.0.1', port }, 'bare proxy', {
      alive: () => bare.proxy.alive(),
      timeoutMs: startTimeoutMs,
    });
    bare.proxyUrl = `http://127.0.0.1:${port}`;
    return bare;
  } catch (err) {
    await bare.stop();
    throw err;
  }
}
