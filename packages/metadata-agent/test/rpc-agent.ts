/*
 * The agent as an operator runs it, for the RPC tests: the real CLI started with neutron's files (stock
 * neutron.conf and metadata_agent.ini as kolla, devstack and Debian write them, rendered from
 * test/fixtures with this lab's broker, Nova and paths), its JSON log lines parsed, requests sent over
 * its UNIX socket as the proxy sends them, and its admin socket (/readyz, /metrics) read. The process is
 * the testkit's spawnService; its whole output is kept in a file.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { logFileLines, parseLogLines, serviceEnv, spawnService, tempDir, until } from '@nmp/testkit';
import { type SocketResponse, viaSocket } from './helpers.js';

export const AGENT_CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

export type Flavour = 'kolla' | 'devstack' | 'debian';

export interface FixtureVars {
  readonly transportUrl: string;
  readonly statePath: string;
  readonly novaHost: string;
  readonly novaPort: number;
  readonly secret: string;
  readonly host?: string;
}

/** Write neutron.conf and metadata_agent.ini of `flavour` into `dir`; returns both paths. */
export function writeStockFiles(dir: string, flavour: Flavour, v: FixtureVars): [string, string] {
  const render = (name: string) =>
    readFileSync(join(FIXTURES, name), 'utf8')
      .replaceAll('@TRANSPORT_URL@', v.transportUrl)
      .replaceAll('@STATE_PATH@', v.statePath)
      .replaceAll('@NOVA_HOST@', v.novaHost)
      .replaceAll('@NOVA_PORT@', String(v.novaPort))
      .replaceAll('@SECRET@', v.secret)
      .replaceAll('@HOST@', v.host ?? 'network-node-1');
  const conf = join(dir, 'neutron.conf');
  const ini = join(dir, 'metadata_agent.ini');
  writeFileSync(conf, render(`neutron.conf.${flavour}`), { mode: 0o640 });
  writeFileSync(ini, render(`metadata_agent.ini.${flavour}`), { mode: 0o640 });
  return [conf, ini];
}

export interface AgentProc {
  readonly child: ChildProcess;
  readonly socketPath: string;
  readonly adminSocket: string;
  lines(): Array<Record<string, unknown>>;
  text(): string;
  waitForLine(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<Record<string, unknown>>;
  /** GET over the agent socket as the proxy sends it. */
  get(headers: Record<string, string>, path?: string): Promise<SocketResponse>;
  admin(path: string): Promise<SocketResponse>;
  /** A metric's value from /metrics (sum over series matching `labels`), NaN when absent. */
  metric(name: string, labels?: string): Promise<number>;
  stop(): Promise<void>;
  readonly exited: Promise<number | string>;
}

export async function startAgentCli(
  t: TestContext,
  args: readonly string[],
  socketPath: string,
  env: Record<string, string> = {},
  waitReady = true,
  /** Read the log from this file (the agent was given --log-file) instead of its output. */
  logFile?: string,
): Promise<AgentProc> {
  // The whole output goes to a file (the tests search all of it for secrets; in memory only the tail is kept).
  const outFile = join(tempDir(t, 'nmp-rpc-agent-'), 'agent.out');
  const agent = spawnService('agent', AGENT_CLI, args, { t, env: serviceEnv(env), outFile });
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  const lines = () => (logFile ? logFileLines(logFile) : parseLogLines(read(outFile)));
  const text = () => (logFile ? `${read(outFile)}${read(logFile)}` : read(outFile));
  const waitForLine: AgentProc['waitForLine'] = async (pred, timeoutMs = 20_000, what = 'a log line') => {
    try {
      return await until(
        what,
        () => {
          const hit = lines().find(pred);
          if (hit) return hit;
          if (agent.alive() !== true) throw new Error(`agent exited before ${what}`);
          return undefined;
        },
        timeoutMs,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}:\n${text().slice(-5000)}`);
    }
  };
  const adminSocket = `${socketPath}.admin`;
  const proc: AgentProc = {
    child: agent.child,
    socketPath,
    adminSocket,
    lines,
    text,
    waitForLine,
    get: (headers, path = '/latest/meta-data/instance-id') => viaSocket(socketPath, { path, headers }),
    admin: (path) => viaSocket(adminSocket, { path }),
    async metric(name, labels = '') {
      const body = (await viaSocket(adminSocket, { path: '/metrics' })).body.toString('utf8');
      let sum = Number.NaN;
      for (const line of body.split('\n')) {
        if (!line.startsWith(name)) continue;
        const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
        if (!m || m[1] !== name || !(m[2] ?? '').includes(labels)) continue;
        sum = (Number.isNaN(sum) ? 0 : sum) + Number(m[3]);
      }
      return sum;
    },
    async stop() {
      await agent.stop();
    },
    exited: agent.exited,
  };
  if (waitReady)
    await waitForLine((l) => l.msg === 'metadata-agent listening', 30_000, 'the agent to listen');
  return proc;
}
