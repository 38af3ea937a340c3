#!/usr/bin/env node
// `npm run bench:region` (root): a region-sized boot storm on one node. N instances (default 10,000) over M
// networks (default 1,000), proxy_mode = daemon: ONE metadata-proxy-daemon (supervisor as root, serving
// worker as nobody) with M attachments, each with its own network id and listener; every instance runs
// cloud-init's read sequence (storm-client.ts: /openstack twice, meta_data.json, user_data,
// vendor_data.json, vendor_data2.json, network_data.json, a new connection each, all instances at once).
// Port lookups go over RPC (a throwaway RabbitMQ node) to neutron's own server code (python3-neutron's
// MetadataRpcCallback, `--rpc-workers` processes, each answer after `--latency-ms`), Nova is
// nova-metadata-dev. Three storms, the same daemon, broker and neutron-server throughout:
//
//   nmp         our metadata-agent (resolver = rpc), its socket held as nmp-metadata-agent.socket holds it
//               (socket_holder.py, sd_listen_fds), fresh start (empty cache);
//   neutron     neutron's own metadata agent (Debian's python3-neutron, neutron.cmd.eventlet.agents.metadata:
//               the neutron-metadata-agent program, its defaults: metadata_workers = cores / 2, no cache)
//               on the same socket path, behind the same daemon;
//   restarts    our agent again, restarted three times the systemd way during the storm and the broker
//               stopped and started once; the instances retry as cloud-init does (5 retries, 1 s apart) and
//               every failed try is counted with its time.
//
// Measured per storm: time to the last answer, p50/p99 of answered requests, failed requests, RPCs
// (get_ports reaching neutron-server) per instance, CPU seconds of neutron-server (its RPC workers), the
// agent, the daemon (supervisor + worker), Nova and the clients, RSS of agent and daemon after the storm.
//
// How the storm reaches the daemon's listeners: one network namespace made by the bench holds all M
// listeners (127.21.x.y:80, one per network, on its loopback) and the instances (127.20.x.y, the client
// process runs in it); the namespace is named M times under /run/netns (bind mounts, as `ip netns add`
// makes them), so the daemon attaches M "namespaces" exactly as the hooks attach qdhcp- namespaces, but a
// single client process can reach every listener. The per-namespace cost of real separate namespaces
// (setns per namespace at attach, memory per namespace) is daemon-1000.ts's measure. Nothing is sent
// outside loopback and that namespace; everything is removed at the end (also on failure, Ctrl-C or
// --max-seconds).
import { type ChildProcess, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CLI,
  cleanUpOnExit,
  cpuSecondsOf,
  fmt,
  freePort,
  type MachineInfo,
  machineBusySeconds,
  machineInfo,
  mdTable,
  median,
  memoryOf,
  ROOT,
  requireBuilt,
  resultsDir,
  type Service,
  sleep,
  stamp,
  startNode,
  waitForConnect,
} from '@nmp/bench';
import { SERVICE_NODE_FLAGS } from '@nmp/common';
import { daemonClient } from '@nmp/metadata-proxy-daemon/client';
import { DEBIAN_PYTHON, SOCKET_HOLDER_SCRIPT, startAgentCli } from '@nmp/testkit';
import { type NeutronRpcBackend, startNeutronRpcBackend } from './rpc-backend.js';
import {
  type ClientResult,
  type ClientSpec,
  runClient,
  STORM_PROJECT,
  type StormInstance,
  stormInstance,
  stormNovaInstance,
} from './storm-instances.js';

const USAGE = `usage: npm run bench:region -- [--instances N] [--networks M] [--runs R] [options]   (root)

  --instances N     instances booting at once (default 10000, at most 60000)
  --networks M      networks (daemon attachments) they are spread over (default 1000, at most 5000)
  --runs R          runs of the whole set, each with fresh agents; medians reported (default 1)
  --storms LIST     which storms, comma-separated: nmp,neutron,restarts (default all three)
  --latency-ms MS   delay of every get_ports answer in neutron-server (default 2)
  --rpc-workers W   neutron-server RPC worker processes (default 2)
  --port-cache-ttl S  our agent's port_cache_ttl (default: the agent's default, 5 s)
  --rpc-lookup-batch-max N  our agent's rpc_lookup_batch_max (default: the agent's default; 1 = one address
                    per get_ports, no coalescing)
  --max-seconds S   abort (and clean up) after S seconds (default 2400)
  --from-results F  no storm: the report of earlier runs (results.json files, comma-separated, same
                    instances and networks; their runs' medians), printed or, with --write, written
  --write           write the results into docs/benchmarks.md (between the region markers)
  --out FILE        with --write: the file (default docs/benchmarks.md)
`;

const DAEMON_CLI = join(ROOT, 'packages/metadata-proxy-daemon/dist/src/cli.js');
const VERSION = '2018-08-27';
const MARK_START = '<!-- region:start (written by packages/bench/src/region.ts) -->';
const MARK_END = '<!-- region:end -->';
/** cloud-init's OpenStack datasource: retries 5, url_helper waits 1 s between tries, timeout 10 s. */
const CLOUD_INIT = { retries: 5, retryDelayMs: 1000, timeoutMs: 10_000 };

const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');
const log = (m: string): void => {
  process.stderr.write(`${m}\n`);
};

type StormLabel = 'nmp' | 'neutron' | 'restarts';
const STORM_LABELS: readonly StormLabel[] = ['nmp', 'neutron', 'restarts'];
const isStormLabel = (s: string): s is StormLabel => (STORM_LABELS as readonly string[]).includes(s);

/** Something that happened during the restarts storm, `t` seconds after it began. */
interface StormEvent {
  readonly what: string;
  readonly t: number;
}

/** One storm's figures. */
interface RegionStorm extends ClientResult {
  label: string;
  events: readonly StormEvent[];
  rpcCalls: number;
  rpcPerInstance: number;
  maxRpcForOneAddress: number;
  cpuS: Record<string, number>;
  otherCpuShare: number;
  load: { before: number; after: number };
  memory: { agentRssKb: number; daemonRssKb: number; workerRssKb: number | undefined };
  eventsText?: string;
}

/** One run: the daemon's attach, then each storm asked for. */
interface RunResults {
  attach: { seconds: number; healthy: number };
  nmp?: RegionStorm;
  neutron?: RegionStorm;
  restarts?: RegionStorm;
}

/** What results.json holds (and --from-results reads back). */
interface Summary {
  date: string;
  dates?: string[];
  machine: MachineInfo;
  instances: number;
  networks: number;
  latencyMs: number;
  rpcWorkers: number;
  portCacheTtl: string;
  rpcLookupBatchMax?: string;
  runs: RunResults[];
}

const { values: opts } = parseArgs({
  options: {
    instances: { type: 'string', default: '10000' },
    networks: { type: 'string', default: '1000' },
    runs: { type: 'string', default: '1' },
    storms: { type: 'string', default: 'nmp,neutron,restarts' },
    'latency-ms': { type: 'string', default: '2' },
    'rpc-workers': { type: 'string', default: '2' },
    'max-seconds': { type: 'string', default: '2400' },
    'port-cache-ttl': { type: 'string', default: '' },
    'rpc-lookup-batch-max': { type: 'string', default: '' },
    'from-results': { type: 'string', default: '' },
    write: { type: 'boolean', default: false },
    out: { type: 'string', default: 'docs/benchmarks.md' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const N = Number(opts.instances);
const M = Number(opts.networks);
const RUNS = Number(opts.runs);
const STORM_NAMES = opts.storms.split(',').filter(Boolean);
const STORMS = STORM_NAMES.filter(isStormLabel);
if (
  !Number.isInteger(N) ||
  N < 1 ||
  N > 60_000 ||
  !Number.isInteger(M) ||
  M < 1 ||
  M > 5000 ||
  M > N ||
  !Number.isInteger(RUNS) ||
  RUNS < 1 ||
  RUNS > 10 ||
  STORM_NAMES.some((s) => !isStormLabel(s))
) {
  process.stderr.write(`region: bad arguments\n\n${USAGE}`);
  process.exit(2);
}
if (opts['from-results'] !== '') {
  const files = opts['from-results'].split(',').filter(Boolean);
  // results.json files this program wrote.
  const all = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Summary);
  const first = all[0];
  const last = all.at(-1);
  if (first === undefined || last === undefined) throw new Error('--from-results: no file');
  for (const r of all)
    if (r.instances !== first.instances || r.networks !== first.networks)
      throw new Error('--from-results: the files are of different storm sizes');
  const summary: Summary = { ...last, runs: all.flatMap((r) => r.runs), dates: all.map((r) => r.date) };
  const section = report(summary);
  process.stdout.write(`${section}\n`);
  if (opts.write) writeSection(section);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('region: needs root (a network namespace for the listeners)\n');
  process.exit(2);
}
requireBuilt();

// ---- what is created, and its removal ----
const prefix = `nmpr${randomBytes(2).toString('hex')}`;
const REGION_NS = `${prefix}-region`;
const nsNames: string[] = [];
const children = new Set<ChildProcess>();
const work = mkdtempSync(join(tmpdir(), 'nmp-region-'));
// The daemon's worker runs as nobody and must reach the agent's socket in here.
chmodSync(work, 0o755);
let cleaned = false;
function cleanupSync() {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  const r = spawnSync('ip', ['netns', 'pids', REGION_NS], { encoding: 'utf8' });
  for (const pid of (r.stdout ?? '').split(/\s+/).filter((x) => /^\d+$/.test(x))) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone
    }
  }
  const names = [...nsNames, REGION_NS];
  spawnSync('ip', ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join('') });
  rmSync(work, { recursive: true, force: true });
}
cleanUpOnExit('region', Number(opts['max-seconds']), cleanupSync);

function sh(file: string, args: readonly string[], input?: string): string {
  const r = spawnSync(file, args, { input: input ?? '', encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** CPU seconds of a process and all its descendants (neutron's agent forks its WSGI worker). */
function treeCpuSeconds(pid: number): number {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const siblings = kids.get(ppid) ?? [];
      siblings.push(Number(d));
      kids.set(ppid, siblings);
    } catch {
      // gone
    }
  }
  let total = 0;
  const stack = [pid];
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    const s = cpuSecondsOf(p);
    if (Number.isFinite(s)) total += s;
    stack.push(...(kids.get(p) ?? []));
  }
  return total;
}

/** RSS (KiB) of a process and all its descendants. */
function treeRssKb(pid: number): number {
  let total = memoryOf(pid).rssKb || 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid)
        total += memoryOf(Number(d)).rssKb || 0;
    } catch {
      // gone
    }
  }
  return total;
}

// ---- the topology ----
const networkId = (j: number): string => `5707e000-0000-4000-8000-${hex(j, 12)}`;
const listenerOf = (j: number): string => `127.21.${Math.floor(j / 250)}.${(j % 250) + 1}`;
interface Network {
  readonly j: number;
  readonly id: string;
  readonly ns: string;
  readonly address: string;
}
const networks: Network[] = Array.from({ length: M }, (_, j) => ({
  j,
  id: networkId(j),
  ns: `${prefix}-${j}`,
  address: listenerOf(j),
}));
const instances: (StormInstance & { network: Network })[] = Array.from({ length: N }, (_, k) => ({
  ...stormInstance(k),
  network: networks[k % M]!,
}));

/** Our agent under a socket holder, and what the holder reports. */
interface HeldAgent {
  readonly service: Service;
  /** The pid of the agent's `n`th start (the holder's `started` events). */
  started(n: number, timeoutMs?: number): Promise<number>;
  /** Resolves once agent `pid` has logged its broker connection. */
  listening(pid: number, timeoutMs?: number): Promise<void>;
  /** A restart the systemd way: the holder restarts the agent on SIGHUP, with the same socket. */
  restart(): void;
  stop(): Promise<void>;
}

/** The socket holder's event lines (its stdout: one JSON object per line). */
interface HolderEvent {
  readonly event: string;
  readonly pid?: number;
}

/**
 * Our agent under a socket holder (what nmp-metadata-agent.socket + .service do): the testkit's
 * startAgentCli, wrapped in socket_holder.py, which holds the socket and starts (and restarts) the agent.
 */
async function startOurAgent(
  extraEnv: Readonly<Record<string, string>>,
  secret: string,
  socketPath: string,
  novaPort: number,
  logDir: string,
  name: string,
): Promise<HeldAgent> {
  const outFile = join(logDir, `${name}.holder.out`);
  const service = await startAgentCli({
    name,
    socketPath,
    novaPort,
    sharedSecret: secret,
    env: extraEnv,
    wrap: [DEBIAN_PYTHON, SOCKET_HOLDER_SCRIPT, '--unix', `${socketPath},0666`, '--name', 'metadata', '--'],
    resolverArgs: ['--resolver', 'rpc'],
    args: [
      '--metadata-proxy-socket-mode',
      'all',
      '--log-level',
      'info',
      '--log-file',
      join(logDir, `${name}.log`),
      ...(opts['port-cache-ttl'] !== '' ? ['--port-cache-ttl', opts['port-cache-ttl']] : []),
      ...(opts['rpc-lookup-batch-max'] !== ''
        ? ['--rpc-lookup-batch-max', opts['rpc-lookup-batch-max']]
        : []),
    ],
    // The holder listens at once; started() and listening() tell when the agent is there.
    noWait: true,
  });
  children.add(service.child);
  const events = (): HolderEvent[] =>
    service
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{"event"'))
      .map((l) => JSON.parse(l) as HolderEvent);
  const started = async (n: number, timeoutMs = 30_000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = events().filter((x) => x.event === 'started')[n - 1];
      if (e?.pid !== undefined) return e.pid;
      if (Date.now() > deadline)
        throw new Error(`agent start #${n} not seen:\n${service.output().slice(-3000)}`);
      await sleep(20);
    }
  };
  /** The agent's `listening` line of process `pid` (it serves and, with rpc, has started its broker link). */
  const listening = async (pid: number, timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const file = join(logDir, `${name}.log`);
    for (;;) {
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        // not yet
      }
      if (
        text.split('\n').some((l) => l.includes(`"pid":${pid},`) && l.includes('"code":"MDA_RPC_CONNECTED"'))
      )
        return;
      if (Date.now() > deadline)
        throw new Error(`agent ${pid} did not connect to RabbitMQ within ${timeoutMs} ms`);
      await sleep(50);
    }
  };
  return {
    service,
    started,
    listening,
    restart: () => service.child.kill('SIGHUP'),
    async stop() {
      await service.stop(20_000);
      children.delete(service.child);
      writeFileSync(outFile, service.output());
    },
  };
}

/** neutron's own metadata agent (Debian's neutron-metadata-agent program, from python3-neutron). */
async function startNeutronAgent({
  secret,
  socketPath,
  novaPort,
  transportUrl,
  logDir,
}: {
  secret: string;
  socketPath: string;
  novaPort: number;
  transportUrl: string;
  logDir: string;
}): Promise<Service> {
  const conf = join(work, 'neutron.conf');
  const ini = join(work, 'metadata_agent.ini');
  writeFileSync(
    conf,
    [
      '[DEFAULT]',
      `transport_url = ${transportUrl}`,
      `state_path = ${work}`,
      'host = region-bench',
      `log_file = ${join(logDir, 'neutron-metadata-agent.log')}`,
      '[agent]',
      'report_interval = 30',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  writeFileSync(
    ini,
    [
      '[DEFAULT]',
      'nova_metadata_host = 127.0.0.1',
      `nova_metadata_port = ${novaPort}`,
      `metadata_proxy_shared_secret = ${secret}`,
      `metadata_proxy_socket = ${socketPath}`,
      'metadata_proxy_socket_mode = all',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  rmSync(socketPath, { force: true });
  const proc = startNode(
    'neutron-metadata-agent',
    '-c',
    [
      "import sys; from neutron.cmd.eventlet.agents.metadata import main; sys.argv[0] = 'neutron-metadata-agent'; sys.exit(main())",
      '--config-file',
      conf,
      '--config-file',
      ini,
    ],
    { logDir, node: DEBIAN_PYTHON },
  );
  children.add(proc.child);
  await waitForConnect({ path: socketPath }, 'neutron-metadata-agent', {
    timeoutMs: 60_000,
    alive: () => proc.alive(),
  });
  return proc;
}

/** What a storm runs against. */
interface StormContext {
  readonly logDir: string;
  readonly backend: NeutronRpcBackend;
  readonly nova: Service;
  readonly daemon: Service;
  readonly workerPid: number | undefined;
  /** The agent's pid now (it changes with restarts). */
  agentPid: () => number | undefined;
}

/** One storm through the daemon's listeners; `during(t0)` runs alongside (the restarts). */
async function storm(
  label: StormLabel,
  ctx: StormContext,
  { retries = 0, during }: { retries?: number; during?: (t0: number) => Promise<StormEvent[]> } = {},
): Promise<RegionStorm> {
  const logDir = join(ctx.logDir, label);
  mkdirSync(logDir, { recursive: true });
  const specFile = join(logDir, 'client.json');
  const spec: ClientSpec = {
    version: VERSION,
    timeoutMs: CLOUD_INIT.timeoutMs,
    retries,
    retryDelayMs: CLOUD_INIT.retryDelayMs,
    instances: instances.map((i) => ({ ip: i.ip, uuid: i.uuid, url: `http://${i.network.address}:80` })),
  };
  writeFileSync(specFile, JSON.stringify(spec));
  await ctx.backend.reset();
  const serverPids = ctx.backend.servers.map((s) => s.pid);
  const pidCpu = (pid: number | undefined) => (pid === undefined ? Number.NaN : cpuSecondsOf(pid));
  const cpu = (): Record<string, number> => {
    const agentPid = ctx.agentPid();
    return {
      neutronServer: serverPids.reduce((a, p) => a + cpuSecondsOf(p), 0),
      agent: agentPid ? treeCpuSeconds(agentPid) : Number.NaN,
      daemon: cpuSecondsOf(ctx.daemon.pid) + pidCpu(ctx.workerPid),
      nova: cpuSecondsOf(ctx.nova.pid),
    };
  };
  const cpu0 = cpu();
  const busy0 = machineBusySeconds();
  const load0 = loadavg()[0];
  const t0 = Date.now();
  const side = during ? during(t0) : Promise.resolve([]);
  const client = await runClient(specFile, 600_000, ['ip', 'netns', 'exec', REGION_NS]);
  const events = await side;
  const cpu1 = cpu();
  const busy1 = machineBusySeconds();
  const counts = await ctx.backend.counts();
  // With restarts the agent's pid changes: its CPU is not comparable, and not reported.
  const cpuS: Record<string, number> = Object.fromEntries(
    Object.keys(cpu0).map((k) => [k, cpu1[k]! - cpu0[k]!]),
  );
  cpuS.clients = client.clientCpuS;
  const ours = Object.values(cpuS).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const agentPid = ctx.agentPid();
  const worker = ctx.workerPid === undefined ? {} : memoryOf(ctx.workerPid);
  const r: RegionStorm = Object.assign(client, {
    label,
    events,
    rpcCalls: counts.calls,
    rpcPerInstance: counts.calls / N,
    maxRpcForOneAddress: counts.maxForOneAddress,
    cpuS,
    otherCpuShare: Math.max(0, (busy1 - busy0 - ours) / client.elapsedS),
    load: { before: load0, after: loadavg()[0]! },
    memory: {
      agentRssKb: agentPid ? treeRssKb(agentPid) : Number.NaN,
      daemonRssKb: (memoryOf(ctx.daemon.pid).rssKb || 0) + (worker.rssKb || 0),
      workerRssKb: worker.rssKb,
    },
  });
  delete r.failedTryTimes;
  log(
    `  ${label}: last answer after ${r.seconds.toFixed(2)} s; ${r.requests} requests, ${r.failed} failed` +
      `${retries ? ` (${r.failedTries} failed tries, retried)` : ''}; ${counts.calls} RPCs (${r.rpcPerInstance.toFixed(2)}/instance); ` +
      `p50 ${fmt.ms(r.p50)} ms, p99 ${fmt.ms(r.p99)} ms`,
  );
  log(
    `         CPU s: ${Object.entries(r.cpuS)
      .map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(2) : '-'}`)
      .join(
        ', ',
      )}; other processes ${Math.round(r.otherCpuShare * 100)}% of a core; load ${r.load.before.toFixed(2)} -> ${r.load.after.toFixed(2)}`,
  );
  for (const f of r.failureExamples.slice(0, 3)) log(`    failed: ${JSON.stringify(f)}`);
  for (const f of (r.failedTryExamples ?? []).slice(0, 3)) log(`    failed try: ${JSON.stringify(f)}`);
  return r;
}

async function oneRun(run: number, backend: NeutronRpcBackend, dir: string): Promise<RunResults> {
  const logDir = join(dir, `run-${run}`);
  mkdirSync(logDir, { recursive: true });
  const secret = randomBytes(24).toString('base64url');
  const env = { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: secret, NMP_TRANSPORT_URL: backend.url };
  const started: (() => Promise<unknown>)[] = [];
  try {
    // Nova
    const instancesFile = join(work, 'instances.json');
    writeFileSync(
      instancesFile,
      JSON.stringify({ instances: instances.map((i) => stormNovaInstance(i, i.network.id, 1450)) }),
    );
    const novaPort = await freePort();
    const nova = startNode(
      'nova',
      CLI.nova,
      [
        '--host',
        '127.0.0.1',
        '--port',
        String(novaPort),
        '--instances',
        instancesFile,
        '--log-level',
        'warn',
      ],
      { env, logDir },
    );
    started.push(() => nova.stop());
    // Reading 10,000 instances on a busy machine takes a while.
    await waitForConnect({ host: '127.0.0.1', port: novaPort }, 'nova-metadata-dev', {
      timeoutMs: 120_000,
      alive: () => nova.alive(),
    });

    // our agent, its socket held as the .socket unit holds it
    const socketPath = join(work, `metadata_proxy-${run}`);
    let agent: HeldAgent | undefined = await startOurAgent(
      { NMP_TRANSPORT_URL: backend.url },
      secret,
      socketPath,
      novaPort,
      logDir,
      'agent',
    );
    let agentStarts = 1;
    let agentPid: number | undefined = await agent.started(1);
    started.push(async () => agent?.stop());
    await agent.listening(agentPid, 60_000);

    // the daemon and its M attachments
    const stateDir = join(work, `state-${run}`);
    mkdirSync(stateDir, { recursive: true });
    const control = join(stateDir, 'nmp-metadata-proxy-daemon', 'control.sock');
    const daemon = startNode(
      'daemon',
      DAEMON_CLI,
      [
        '--state-path',
        stateDir,
        '--metadata-proxy-socket',
        socketPath,
        '--metadata-proxy-user',
        'nobody',
        '--netns-exec',
        'python',
        '--attach-concurrency',
        '8',
        // To stdout (daemon.out): the worker, running as nobody, could not open a file in the results.
        '--log-level',
        'info',
      ],
      { env, logDir, nodeArgs: [...SERVICE_NODE_FLAGS] },
    );
    started.push(() => daemon.stop(20_000));
    for (let i = 0; ; i++) {
      try {
        await daemonClient.list(control, 2_000);
        break;
      } catch (err) {
        if (daemon.alive() !== true || i > 150) throw new Error(`daemon: ${daemon.alive()} ${err}`);
        await sleep(100);
      }
    }
    const ta = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < networks.length) {
          const n = networks[next++]!;
          await daemonClient.attach(
            control,
            { id: n.id, mode: 'network', namespace: n.ns, binds: [`${n.address}:80`] },
            120_000,
          );
        }
      }),
    );
    const list = await daemonClient.list(control, 60_000);
    const attach = { seconds: (Date.now() - ta) / 1000, healthy: list.daemon.healthy };
    const results: RunResults = { attach };
    log(`  daemon: ${list.daemon.healthy}/${M} attachments listening after ${attach.seconds.toFixed(1)} s`);
    if (list.daemon.healthy !== M) throw new Error(`only ${list.daemon.healthy} of ${M} attachments healthy`);
    const ctx: StormContext = {
      logDir,
      backend,
      nova,
      daemon,
      workerPid: list.daemon.workerPid,
      agentPid: () => agentPid,
    };

    if (STORMS.includes('nmp')) results.nmp = await storm('nmp', ctx);

    if (STORMS.includes('restarts')) {
      const held = agent;
      // A fresh agent (empty cache), then the storm with three restarts and one broker restart.
      held.restart();
      agentPid = await held.started(++agentStarts);
      await held.listening(agentPid);
      const expected = results.nmp?.seconds ?? 10;
      const restarts = await storm('restarts', ctx, {
        retries: CLOUD_INIT.retries,
        during: async (t0) => {
          const events: StormEvent[] = [];
          const at = (s: number) => sleep(Math.max(0, t0 + s * 1000 - Date.now()));
          const mark = (what: string) => events.push({ what, t: (Date.now() - t0) / 1000 });
          // Spread over the storm as the first storm lasted, at least 2 s apart.
          const step = Math.max(2, expected / 5);
          for (let k = 1; k <= 3; k++) {
            await at(step * k);
            mark(`agent restart ${k}`);
            held.restart();
            agentPid = await held.started(++agentStarts);
            await held.listening(agentPid, 60_000);
            mark(`agent ${k} connected`);
          }
          await at(step * 4);
          mark('broker stop');
          await backend.rabbit.stop();
          mark('broker stopped');
          await backend.rabbit.start();
          mark('broker started');
          return events;
        },
      });
      // When each failed try happened, next to the events.
      restarts.eventsText = restarts.events.map((e) => `${e.what} ${e.t.toFixed(1)} s`).join(', ');
      results.restarts = restarts;
      log(`         events: ${restarts.eventsText}`);
    }

    if (STORMS.includes('neutron')) {
      await agent.stop();
      agent = undefined;
      const neutron = await startNeutronAgent({
        secret,
        socketPath,
        novaPort,
        transportUrl: backend.url,
        logDir,
      });
      started.push(() => neutron.stop(10_000));
      ctx.agentPid = () => neutron.pid;
      // Its first state report and RPC client set-up.
      await sleep(3000);
      results.neutron = await storm('neutron', ctx);
    }
    return results;
  } finally {
    for (const stop of started.reverse()) await stop();
  }
}

async function main() {
  const machine = machineInfo();
  const dir = resultsDir(`region-${stamp()}`);
  log(
    `region storm: ${N} instances over ${M} networks, daemon mode, resolver rpc (neutron's server code, ${opts['rpc-workers']} workers, ${opts['latency-ms']} ms), storms ${STORMS.join(', ')}, ${RUNS} run(s); load ${loadavg()[0].toFixed(2)}; logs in ${relative(ROOT, dir)}/`,
  );

  // The namespace and its M names.
  sh('ip', ['netns', 'add', REGION_NS]);
  sh('ip', ['-n', REGION_NS, 'link', 'set', 'lo', 'up']);
  const script = networks
    .map(
      (n) =>
        `touch /run/netns/${n.ns} && mount --bind /run/netns/${REGION_NS} /run/netns/${n.ns} || exit 1\n`,
    )
    .join('');
  nsNames.push(...networks.map((n) => n.ns));
  sh('sh', ['-e'], script);

  const ports = instances.map((i) => ({
    id: i.portId,
    network_id: i.network.id,
    mac_address: i.mac,
    fixed_ips: [{ subnet_id: `5707d000-0000-4000-8000-${hex(i.network.j, 12)}`, ip_address: i.ip }],
    device_id: i.uuid,
    device_owner: 'compute:nova',
    project_id: STORM_PROJECT,
    // neutron-server answers both; neutron's own agent (Zed) reads tenant_id.
    tenant_id: STORM_PROJECT,
  }));
  const backend = await startNeutronRpcBackend({
    ports,
    latencyMs: Number(opts['latency-ms']),
    workers: Number(opts['rpc-workers']),
    log,
  });
  const runs: RunResults[] = [];
  try {
    for (let run = 1; run <= RUNS; run++) {
      log(`run ${run}:`);
      runs.push(await oneRun(run, backend, dir));
    }
  } finally {
    await backend.stop();
  }
  const summary: Summary = {
    date: new Date().toISOString(),
    machine,
    instances: N,
    networks: M,
    latencyMs: Number(opts['latency-ms']),
    rpcWorkers: Number(opts['rpc-workers']),
    portCacheTtl: opts['port-cache-ttl'],
    rpcLookupBatchMax: opts['rpc-lookup-batch-max'],
    runs,
  };
  writeFileSync(join(dir, 'results.json'), JSON.stringify(summary, null, 2));
  const section = report(summary);
  process.stdout.write(`\n${section}\n`);
  if (opts.write) writeSection(section);
}

/** Replace the text between the region markers of --out (or add the section at the end). */
function writeSection(section: string): void {
  const file = join(ROOT, opts.out);
  const old = readFileSync(file, 'utf8');
  const block = `${MARK_START}\n${section}\n${MARK_END}`;
  const s = old.indexOf(MARK_START.slice(0, 20));
  const e = old.indexOf(MARK_END);
  writeFileSync(
    file,
    s >= 0 && e > s
      ? old.slice(0, s) + block + old.slice(e + MARK_END.length)
      : `${old.trimEnd()}\n\n${block}\n`,
  );
  log(`wrote ${relative(ROOT, file)}`);
}

/** The markdown section: per storm the medians over the runs, and the targets. */
function report(s: Summary): string {
  const med = (label: StormLabel, f: (r: RegionStorm) => number | null) =>
    median(s.runs.map((r) => (r[label] ? f(r[label]) : Number.NaN)));
  const labels = STORM_LABELS.filter((l) => s.runs.some((r) => r[l]));
  const title: Record<StormLabel, string> = {
    nmp: 'nmp agent',
    neutron: "neutron's agent",
    restarts: 'nmp agent, 3 agent restarts + 1 broker restart',
  };
  const n = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const rows = labels.map((l) => [
    title[l],
    n(med(l, (r) => r.seconds)),
    `${n(
      med(l, (r) => r.requests),
      0,
    )}`,
    n(
      med(l, (r) => r.failed),
      0,
    ),
    l === 'restarts'
      ? n(
          med(l, (r) => r.failedTries),
          0,
        )
      : '-',
    n(med(l, (r) => r.rpcPerInstance)),
    n(med(l, (r) => r.rpcCalls / Math.max(1, r.requests - r.failed))),
    n(med(l, (r) => r.cpuS.neutronServer)),
    l === 'restarts' ? '-' : n(med(l, (r) => r.cpuS.agent)),
    n(med(l, (r) => r.cpuS.daemon)),
    fmt.ms(med(l, (r) => r.p50)),
    fmt.ms(med(l, (r) => r.p99)),
    l === 'restarts' ? '-' : fmt.mb(med(l, (r) => r.memory.agentRssKb)),
    fmt.mb(med(l, (r) => r.memory.daemonRssKb)),
    n(med(l, (r) => r.load.before)),
  ]);
  const table = mdTable(
    [
      'storm',
      'last answer s',
      'requests',
      'failed',
      'failed tries',
      'RPCs / instance',
      'RPCs / answered request',
      'neutron-server CPU s',
      'agent CPU s',
      'daemon CPU s',
      'p50 ms',
      'p99 ms',
      'agent RSS MB',
      'daemon RSS MB',
      'load before',
    ],
    rows,
    ['l', ...Array(14).fill('r')],
  );
  const perRun = s.runs
    .map(
      (r, i) =>
        `- run ${i + 1}: attach ${n(r.attach.seconds, 1)} s (${r.attach.healthy} listening); ` +
        labels
          .flatMap((l) => {
            const x = r[l];
            return x ? [[l, x] as const] : [];
          })
          .map(
            ([l, x]) =>
              `${l} ${n(x.seconds)} s, ${x.failed} failed${l === 'restarts' ? ` (${x.failedTries} failed tries; ${x.eventsText})` : ''}, ${x.rpcCalls} RPCs, other load ${Math.round(x.otherCpuShare * 100)}% of a core`,
          )
          .join('; '),
    )
    .join('\n');
  const ratio =
    labels.includes('nmp') && labels.includes('neutron')
      ? {
          rpc: med('nmp', (r) => r.rpcCalls) / med('neutron', (r) => r.rpcCalls),
          cpu: med('nmp', (r) => r.cpuS.neutronServer) / med('neutron', (r) => r.cpuS.neutronServer),
        }
      : undefined;
  const targets = mdTable(
    ['target (issue 21)', 'goal', 'measured', 'met'],
    [
      [
        `time to last answer, ${s.instances} instances`,
        '<= 25 s',
        `${n(med('nmp', (r) => r.seconds))} s`,
        med('nmp', (r) => r.seconds) <= 25 ? 'yes' : 'no',
      ],
      [
        'RPCs per instance',
        '<= 1',
        n(med('nmp', (r) => r.rpcPerInstance)),
        med('nmp', (r) => r.rpcPerInstance) <= 1 ? 'yes' : 'no',
      ],
      ...(labels.includes('restarts')
        ? [
            [
              'failed requests across 3 agent restarts + 1 broker restart (cloud-init retrying)',
              '0',
              `${n(
                med('restarts', (r) => r.failed),
                0,
              )} (${n(
                med('restarts', (r) => r.failedTries),
                0,
              )} failed tries)`,
              med('restarts', (r) => r.failed) === 0 ? 'yes' : 'no',
            ],
          ]
        : []),
      ...(ratio
        ? [
            [
              "neutron-server RPC load, ours / neutron's agent's (RPCs; CPU s)",
              '<= 1/5',
              `${n(ratio.rpc, 3)}; ${n(ratio.cpu, 3)}`,
              ratio.rpc <= 0.2 && ratio.cpu <= 0.2 ? 'yes' : 'no',
            ],
          ]
        : []),
    ],
    ['l', 'r', 'r', 'r'],
  );
  return [
    '## Region-sized boot storm (issue 21)',
    '',
    `Generated by \`npm run bench:region -- --instances ${s.instances} --networks ${s.networks}${s.portCacheTtl ? ` --port-cache-ttl ${s.portCacheTtl}` : ''}${s.rpcLookupBatchMax ? ` --rpc-lookup-batch-max ${s.rpcLookupBatchMax}` : ''}\` (root), finished ${(s.dates ?? [s.date]).map((d) => `${d.slice(0, 16).replace('T', ' ')} UTC`).join(', ')} (${s.runs.length} run(s) in all). Machine: ${s.machine.nproc} cores, ${s.machine.model}, ${s.machine.memoryGiB} GiB, Node ${s.machine.node}, kernel ${s.machine.kernel}; shared with other work (load average in the table, other processes' CPU per run below). ${s.instances} instances over ${s.networks} networks, one metadata-proxy-daemon with ${s.networks} attachments, each instance running cloud-init's 7 requests (new connection each, all at once, 10 s timeout); port lookups over RPC through RabbitMQ to neutron's own server code (${s.rpcWorkers} RPC workers, ${s.latencyMs} ms per answer), Nova is nova-metadata-dev. Medians of ${s.runs.length} run(s).`,
    '',
    table,
    '',
    perRun,
    '',
    targets,
  ].join('\n');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`region: ${(err instanceof Error && err.stack) || err}`);
    cleanupSync();
    process.exit(1);
  },
);
