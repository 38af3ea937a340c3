/*
 * neutron-server's RPC side for tests and benchmarks: python/neutron_rpc_server.py run with Debian's
 * /usr/bin/python3 (python3-neutron, python3-oslo.messaging), i.e. neutron's own MetadataRpcCallback and
 * AgentExtRpcCallback behind oslo.messaging RPC servers on q-plugin and q-reports-plugin, over a stub core
 * plugin that filters a list of ports. Every get_ports and report_state it receives is kept (filters,
 * context, payload, arrival time); commands set the ports, add latency, or run neutron's own agent-side
 * client code for comparisons. SIGSTOP/SIGCONT (pause/resume) make a neutron-server that stops consuming.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

export const DEBIAN_PYTHON = '/usr/bin/python3';
export const NEUTRON_RPC_SERVER_SCRIPT = fileURLToPath(
  new URL('../../python/neutron_rpc_server.py', import.meta.url),
);

let cachedReason: string | null | undefined;

/** Why neutron's python side cannot run here, or undefined. */
export function neutronPythonSkipReason(): string | undefined {
  if (cachedReason !== undefined) return cachedReason ?? undefined;
  if (!existsSync(DEBIAN_PYTHON)) {
    cachedReason = `${DEBIAN_PYTHON} is missing`;
    return cachedReason;
  }
  const r = spawnSync(
    DEBIAN_PYTHON,
    ['-c', 'import neutron.api.rpc.handlers.metadata_rpc, neutron.db.agents_db, oslo_messaging'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  cachedReason =
    r.status === 0
      ? null
      : `neutron's python code is not importable (apt-get install python3-neutron python3-oslo.messaging): ${(r.stderr || '').trim().split('\n').pop()}`;
  return cachedReason ?? undefined;
}

/** As requireRabbit: skip outside CI, fail as root. */
export function requireNeutronPython(t: TestContext): boolean {
  const reason = neutronPythonSkipReason();
  if (reason === undefined) return true;
  if (typeof process.getuid === 'function' && process.getuid() === 0)
    throw new Error(`${reason}: running as root (as CI does), so this test must run`);
  t.skip(reason);
  return false;
}

export interface ServerEvent {
  readonly event: string;
  readonly [key: string]: unknown;
}

export interface GetPortsEvent extends ServerEvent {
  readonly filters: Record<string, unknown>;
  readonly context: Record<string, unknown>;
  /** Arrival, epoch seconds. */
  readonly t: number;
}

export interface ReportEvent extends ServerEvent {
  readonly agent_state: Record<string, unknown>;
  readonly time: string;
  readonly t: number;
}

export interface NeutronRpcServerOptions {
  readonly transportUrl: string;
  /** neutron-server's host name (its q-plugin.<host> queue). */
  readonly host?: string;
  /** Which servers to run (default both). */
  readonly topics?: ReadonlyArray<'plugin' | 'reports'>;
  readonly exchange?: string;
  /** amqp_durable_queues on the server side. */
  readonly durable?: boolean;
  /** rpc_response_timeout of neutron's own client side (seconds, default 5). */
  readonly rpcTimeoutS?: number;
  readonly ports?: readonly unknown[];
}

export interface NeutronRpcServer {
  readonly pid: number;
  readonly events: readonly ServerEvent[];
  getPorts(): GetPortsEvent[];
  reports(): ReportEvent[];
  /** Run a command; resolves with its result event (rejects on an error result). */
  command(cmd: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>;
  setPorts(ports: readonly unknown[]): Promise<void>;
  setDelay(ms: number): Promise<void>;
  /** Resolves with the first event (from `from` on) matching `pred`. */
  waitFor(pred: (e: ServerEvent) => boolean, timeoutMs?: number, from?: number): Promise<ServerEvent>;
  /** SIGSTOP: connected but consuming nothing. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
  output(): string;
}

export async function startNeutronRpcServer(
  t: TestContext | undefined,
  options: NeutronRpcServerOptions,
): Promise<NeutronRpcServer> {
  const args = [
    NEUTRON_RPC_SERVER_SCRIPT,
    '--host',
    options.host ?? 'neutron-server-test',
    '--topics',
    (options.topics ?? ['plugin', 'reports']).join(','),
    '--exchange',
    options.exchange ?? 'neutron',
    '--durable',
    options.durable ? 'true' : 'false',
    '--rpc-timeout',
    String(options.rpcTimeoutS ?? 5),
  ];
  const child: ChildProcess = spawn(DEBIAN_PYTHON, args, {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NMP_TRANSPORT_URL: options.transportUrl,
      PYTHONUNBUFFERED: '1',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const events: ServerEvent[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let buffered = '';
  let seq = 0;
  child.stdout!.on('data', (c: Buffer) => {
    buffered += c.toString('utf8');
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      if (line === '') continue;
      try {
        events.push(JSON.parse(line) as ServerEvent);
      } catch {
        stderr += `[stdout] ${line}\n`;
      }
    }
    for (const w of waiters) w();
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-200_000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      for (const w of waiters) w();
      resolve();
    }),
  );

  const waitFor = (pred: (e: ServerEvent) => boolean, timeoutMs = 20_000, from = 0): Promise<ServerEvent> =>
    new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < events.length; i++) {
          if (pred(events[i]!)) {
            done();
            resolve(events[i]!);
            return;
          }
        }
        if (exited) {
          done();
          reject(new Error(`neutron RPC server exited:\n${stderr.slice(-4000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for a server event:\n${stderr.slice(-4000)}`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const server: NeutronRpcServer = {
    pid: child.pid ?? -1,
    events,
    getPorts: () => events.filter((e): e is GetPortsEvent => e.event === 'get_ports'),
    reports: () => events.filter((e): e is ReportEvent => e.event === 'report_state'),
    async command(cmd, timeoutMs = 30_000) {
      const id = ++seq;
      child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
      const r = (await waitFor((e) => e.event === 'result' && e.id === id, timeoutMs)) as Record<
        string,
        unknown
      >;
      if (typeof r.error === 'string') throw new Error(`neutron RPC server: ${String(cmd.cmd)}: ${r.error}`);
      return r;
    },
    async setPorts(ports) {
      await server.command({ cmd: 'ports', ports });
    },
    async setDelay(ms) {
      await server.command({ cmd: 'delay', ms });
    },
    waitFor,
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    async stop() {
      if (exited) return;
      child.kill('SIGCONT');
      child.stdin!.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(timer);
    },
    output: () => stderr,
  };
  t?.after(() => server.stop());
  try {
    await waitFor((e) => e.event === 'ready', 60_000);
  } catch (err) {
    await server.stop();
    throw err;
  }
  if (options.ports) await server.setPorts(options.ports);
  return server;
}
