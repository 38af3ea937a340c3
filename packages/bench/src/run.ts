#!/usr/bin/env node
// `npm run bench`: measure the chain the way an operator feels it.
//
//   wrk or autocannon (own process) -> ns-metadata-proxy -> UNIX socket -> metadata-agent -> nova-metadata-dev
//
// For each path (EC2 instance-id, meta_data.json) and connection count (1, 10, 50), one load through the
// chain, then the same load sent directly to Nova with the agent's signed headers (the fairer baseline: Nova
// does the same work, only the two hops are missing), alternating, so that chain/direct comes from the same
// run. Several runs per cell, medians reported. Afterwards RSS/PSS of each process, the boot storm
// (boot-storm.ts, its own process), the targets of issue 6, and docs/benchmarks.md. --profile adds a CPU
// profile of proxy, agent and Nova under 50-connection load, summarised into docs/profiles/.
// As root, --netns adds the same load sent from inside an instance network namespace through a
// qdhcp-style namespace where a second proxy listens on 169.254.169.254:80.
// --compare-bare (issue 22) measures, instead of the direct baseline and the boot storm, a bare Node chain
// (bare/: a five-line proxy, a ten-line agent, the same Nova) alternately with ours, and writes only its
// own section of docs/benchmarks.md (compare-bare.ts).
// Compiled to packages/bench/dist/src/run.js; `npm run bench -- --help` lists the options.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SERVICE_NODE_FLAGS, signInstanceId } from '@nmp/common';
import {
  type CompareBareOptions,
  type Target as CompareBareTarget,
  compareBareTargets,
  printCompareBare,
  writeCompareBareSection,
} from './compare-bare.js';
import { type ProfileSummary, summariseProfileFile } from './cpuprofile-summary.js';
import {
  type BareChain,
  BENCH_DIST,
  type BenchChain,
  cpuTimesOf,
  fmt,
  INSTANCE_A,
  type LoadResult,
  type LoadSpec,
  type MachineInfo,
  type Memory,
  machineBusySeconds,
  machineInfo,
  mdTable,
  median,
  memoryOf,
  NETWORK_ID,
  ROOT,
  requireBuilt,
  resultsDir,
  runLoad,
  SAMPLE_DIR,
  type Service,
  stamp,
  startBareChain,
  startChain,
  textTable,
  trimLogs,
  waitForQuiet,
} from './index.js';
import type { BenchResults, Cell, CellRun, RawCell } from './run-results.js';

const USAGE = `usage: npm run bench -- [options]

  --runs N             runs per cell; medians are reported (default 3)
  --duration S         seconds of load per cell (default 10)
  --connections LIST   connection counts (default 1,10,50)
  --paths LIST         instance-id, meta_data.json (default both)
  --warmup S           warm-up seconds per path and target before the runs (default 2)
  --quiet-wait S       before each cell, wait up to S seconds for other processes to go quiet (default 30)
  --log-level LEVEL    agent and proxy log level (default info, as the targets require)
  --load-tool TOOL     wrk or autocannon (default: wrk when it is installed, it needs about half the CPU
                       per request that autocannon does; else autocannon, from npm)
  --node-args 'ARGS'   extra node flags for agent and proxy, e.g. '--max-semi-space-size=2' (experiments)
  --no-direct          skip the direct-to-Nova baseline
  --compare-bare       measure a bare Node chain (packages/bench/src/bare/: proxy -> UNIX socket -> agent ->
                       the same Nova) alternately with ours, round by round, instead of the direct baseline
                       and the boot storm; reports req/s, p50/p99, CPU µs per request per process of both
                       and their ratios, and writes only that section of docs/benchmarks.md
  --netns              (root) also load from inside an instance namespace via a qdhcp-style namespace
  --no-boot-storm      skip the boot storm
  --storm-runs N       boot storm runs (default 3)
  --storm-instances N  instances in the boot storm (default 1000)
  --profile            also CPU-profile proxy, agent and Nova under 50-connection load (docs/profiles/)
  --profile-only       only the profile (no benchmark, docs/benchmarks.md untouched)
  --profile-duration S seconds of load while profiling (default 10)
  --profile-dir DIR    where the profile summaries go (default docs/profiles); with --compare-bare the
                       bare proxy and agent are profiled too, under the same load (bare-proxy.md, bare-agent.md)
  --out FILE           where the report goes (default docs/benchmarks.md)
  --no-write           print only; write neither the report nor docs/profiles
  --report-from FILE   measure nothing: write the report again from a run's results.json (after editing
                       the Analysis section, or when the report's layout changed)
`;

const PATHS: Record<string, string> = {
  'instance-id': '/latest/meta-data/instance-id',
  'meta_data.json': '/openstack/latest/meta_data.json',
};
const pathOf = (name: string): string => PATHS[name] ?? '';

/** What instance A's answer looks like (chain and direct must also agree byte for byte). */
const EXPECT: Record<string, (body: string) => boolean> = {
  'instance-id': (body) => /^i-[0-9a-f]{8,}$/.test(body),
  'meta_data.json': (body) => body.includes(`"uuid": "${INSTANCE_A.uuid}"`),
};

const TARGETS = {
  chainRps: 10_000,
  chainP99Ms: 10,
  oneConnP50Ms: 0.4,
  stormSeconds: 5,
  agentRssMb: 100,
  proxyRssMb: 70,
};

/** The options of a run (parseOptions). */
interface Options extends CompareBareOptions {
  readonly runs: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly quietS: number;
  readonly logLevel: string;
  readonly nodeArgs: string[];
  readonly loadTool: string;
  readonly connections: number[];
  readonly paths: string[];
  readonly direct: boolean;
  readonly compareBare: boolean;
  readonly netns: boolean;
  readonly bootStorm: boolean;
  readonly stormRuns: number;
  readonly stormInstances: number;
  readonly profile: boolean;
  readonly benchmark: boolean;
  readonly profileDurationS: number;
  readonly profileDir: string;
  readonly out: string;
  readonly write: boolean;
  readonly reportFrom: string | undefined;
}

/** What boot-storm.ts --json prints (the fields the report reads). */
interface StormSummary {
  readonly instances: number;
  readonly sequence: string[];
  readonly neutronLatencyMs: number;
  readonly runs: {
    readonly seconds: number;
    readonly requests: number;
    readonly failed: number;
    readonly neutron: { readonly portLookups: number; readonly tokenRequests: number };
    readonly p50: number | null;
    readonly p99: number | null;
  }[];
  readonly medianSeconds: number;
  readonly maxLookupsPerInstance: number;
  readonly allOk: boolean;
}

/** The --profile part of a run. */
interface ProfileRun {
  readonly dir: string;
  readonly rps: number;
  readonly summaries: Record<string, { summary: ProfileSummary; markdown: string }>;
}

/** A target of issue 6 against a run. */
interface RunTarget {
  readonly name: string;
  readonly target: string;
  readonly value: string;
  readonly met: boolean;
}

interface Table {
  header: string[];
  rows: (string | number)[][];
}

interface ReportContext {
  readonly machine: MachineInfo;
  readonly results: BenchResults;
  readonly storm?: StormSummary | undefined;
  readonly targets: RunTarget[];
  readonly prof?: ProfileRun | undefined;
  readonly command: string;
  readonly date: string;
  readonly elapsedS: number;
}

/** bench-results/run-<stamp>/results.json, read back by --report-from. */
interface SavedRun {
  readonly opts: Options;
  readonly machine: MachineInfo;
  readonly date: string;
  readonly command?: string;
  readonly elapsedS?: number;
  readonly results: BenchResults;
  readonly storm?: StormSummary;
  readonly targets: (RunTarget | CompareBareTarget)[];
  readonly prof?: ProfileRun;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '1,10,50' },
      paths: { type: 'string', default: Object.keys(PATHS).join(',') },
      warmup: { type: 'string', default: '2' },
      'quiet-wait': { type: 'string', default: '30' },
      'log-level': { type: 'string', default: 'info' },
      'node-args': { type: 'string', default: '' },
      'load-tool': { type: 'string', default: 'auto' },
      'no-direct': { type: 'boolean', default: false },
      'compare-bare': { type: 'boolean', default: false },
      netns: { type: 'boolean', default: false },
      'no-boot-storm': { type: 'boolean', default: false },
      'storm-runs': { type: 'string', default: '3' },
      'storm-instances': { type: 'string', default: '1000' },
      profile: { type: 'boolean', default: false },
      'profile-only': { type: 'boolean', default: false },
      'profile-duration': { type: 'string', default: '10' },
      'profile-dir': { type: 'string', default: 'docs/profiles' },
      out: { type: 'string', default: 'docs/benchmarks.md' },
      'no-write': { type: 'boolean', default: false },
      'report-from': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  type NumberOption =
    | 'runs'
    | 'duration'
    | 'warmup'
    | 'quiet-wait'
    | 'storm-runs'
    | 'storm-instances'
    | 'profile-duration';
  const num = (name: NumberOption, min: number, max: number): number => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < min || n > max) usage(`--${name} must be a number in ${min}..${max}`);
    return n;
  };
  const paths = values.paths.split(',').map((p) => p.trim());
  for (const p of paths)
    if (!(p in PATHS)) usage(`unknown path '${p}' (known: ${Object.keys(PATHS).join(', ')})`);
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(values['log-level']))
    usage(`--log-level: trace, debug, info, warn, error or fatal`);
  const loadTool = values['load-tool'] === 'auto' ? (haveWrk() ? 'wrk' : 'autocannon') : values['load-tool'];
  if (!['wrk', 'autocannon'].includes(loadTool)) usage('--load-tool: wrk or autocannon');
  if (loadTool === 'wrk' && !haveWrk()) usage('--load-tool wrk: wrk is not installed (apt-get install wrk)');
  const connections = values.connections.split(',').map(Number);
  if (connections.some((c) => !Number.isInteger(c) || c < 1 || c > 1000))
    usage('--connections: 1..1000 each');
  return {
    runs: num('runs', 1, 50),
    durationS: num('duration', 1, 120),
    warmupS: num('warmup', 0, 60),
    quietS: num('quiet-wait', 0, 600),
    logLevel: values['log-level'],
    nodeArgs: values['node-args'].split(/\s+/).filter(Boolean),
    loadTool,
    connections,
    paths,
    direct: !values['no-direct'] && !values['compare-bare'],
    compareBare: values['compare-bare'],
    netns: values.netns,
    bootStorm: !values['no-boot-storm'] && !values['profile-only'] && !values['compare-bare'],
    stormRuns: num('storm-runs', 1, 20),
    stormInstances: num('storm-instances', 1, 5000),
    profile: values.profile || values['profile-only'],
    benchmark: !values['profile-only'],
    profileDurationS: num('profile-duration', 1, 120),
    profileDir: resolve(ROOT, values['profile-dir']),
    out: resolve(ROOT, values.out),
    write: !values['no-write'],
    reportFrom: values['report-from'],
  };
}

function haveWrk(): boolean {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
}

/** What the report says about the load generator. */
function loadToolText(tool: string): string {
  if (tool !== 'wrk') return 'autocannon 8 in its own process';
  const v = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  const version = /wrk (\S+)/.exec(`${v.stdout}${v.stderr}`)?.[1] ?? '';
  return `wrk ${version} (one thread, a Lua script checking every answer)`;
}

function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

/** One GET with a fresh connection; resolves to {status, body}. */
function get(
  url: string,
  { headers = {}, localAddress }: { headers?: Record<string, string>; localAddress?: string } = {},
): Promise<{ status: number | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers, ...(localAddress ? { localAddress } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/** The sample inventory, with one more address of instance A for the instance namespace (--netns). */
interface InventoryPort {
  device_id: string;
  network_id: string;
  fixed_ips: { subnet_id?: string; ip_address: string }[];
}

function writeInventory(dir: string): string {
  const inv = JSON.parse(readFileSync(join(SAMPLE_DIR, 'inventory.json'), 'utf8')) as {
    ports: InventoryPort[];
  };
  const portA = inv.ports.find((p) => p.device_id === INSTANCE_A.uuid && p.network_id === NETWORK_ID);
  if (!portA) throw new Error('sample inventory: no port of instance A on the sample network');
  portA.fixed_ips.push({ subnet_id: portA.fixed_ips[0]?.subnet_id, ip_address: NETNS.vmIp });
  const file = join(dir, 'inventory.json');
  writeFileSync(file, JSON.stringify(inv, null, 2));
  return file;
}

const NETNS = { dhcpIp: '10.247.0.2', vmIp: '10.247.0.5', metadataIp: '169.254.169.254' };

function directHeaders(secret: string): Record<string, string> {
  return {
    'X-Instance-ID': INSTANCE_A.uuid,
    'X-Tenant-ID': INSTANCE_A.projectId,
    'X-Instance-ID-Signature': signInstanceId(secret, INSTANCE_A.uuid),
    'X-Forwarded-For': '127.0.0.1',
  };
}

/** Check that chain, direct and bare answer correctly and identically before measuring anything. */
async function precheck(
  chain: BenchChain,
  opts: Options,
  bare: BareChain | undefined,
): Promise<Record<string, string>> {
  const expected: Record<string, string> = {};
  for (const name of opts.paths) {
    const viaChain = await get(`${chain.proxyUrl}${pathOf(name)}`);
    if (viaChain.status !== 200) throw new Error(`chain ${name}: HTTP ${viaChain.status}: ${viaChain.body}`);
    if (!EXPECT[name]?.(viaChain.body))
      throw new Error(`chain ${name}: answer is not about instance A: ${viaChain.body.slice(0, 200)}`);
    if (bare) {
      const viaBare = await get(bare.proxyUrl + pathOf(name));
      if (viaBare.status !== 200) throw new Error(`bare ${name}: HTTP ${viaBare.status}: ${viaBare.body}`);
      if (viaBare.body !== viaChain.body) throw new Error(`${name}: chain and bare chain answers differ`);
    }
    if (opts.direct) {
      const direct = await get(chain.novaUrl + pathOf(name), { headers: directHeaders(chain.secret) });
      if (direct.status !== 200) throw new Error(`direct ${name}: HTTP ${direct.status}: ${direct.body}`);
      if (direct.body !== viaChain.body) throw new Error(`${name}: chain and direct answers differ`);
    }
    expected[name] = viaChain.body;
  }
  return expected;
}

/** Measure one cell: the load in its own process, CPU seconds of each server process around it. */
async function measure(
  label: string,
  spec: LoadSpec,
  procs: readonly Service[],
  loadOptions: { wrap?: readonly string[] },
  quietS = 0,
): Promise<CellRun> {
  const waited = quietS > 0 ? await waitForQuiet(quietS) : 0;
  if (waited > 1) log(`  (waited ${Math.round(waited)} s for the machine to be quiet)`);
  const before = procs.map((p) => cpuTimesOf(p.pid));
  const busy0 = machineBusySeconds();
  const load: LoadResult = await runLoad(spec, loadOptions);
  const busy1 = machineBusySeconds();
  const after = procs.map((p) => cpuTimesOf(p.pid));
  for (const p of procs) {
    const why = p.alive();
    if (why !== true) throw new Error(`${p.name} stopped during "${label}" (not by us): ${why}`);
  }
  const cpuS: Record<string, number> = Object.fromEntries(
    procs.map((p, i) => [p.name, after[i]!.user + after[i]!.sys - before[i]!.user - before[i]!.sys]),
  );
  const sysS: Record<string, number> = Object.fromEntries(
    procs.map((p, i) => [p.name, after[i]!.sys - before[i]!.sys]),
  );
  // CPU that neither the chain nor the load generator used while the cell ran: other work on the machine
  // (a busy neighbour skews the figures; the report shows it). Node start-up of the worker counts here too.
  const ours = Object.values(cpuS).reduce((a, b) => a + b, 0) + load.loadgenCpuS;
  const r: CellRun = {
    ...load,
    cpuS,
    sysS,
    otherCpuShare: Math.max(0, (busy1 - busy0 - ours) / load.elapsedS),
    waitedForQuietS: waited,
    loadavg: loadAverage(),
  };
  const bad = r.non2xx + r.errors + r.timeouts + r.mismatches;
  log(
    `  ${label.padEnd(34)} ${fmt.int(r.rps).padStart(7)} req/s  p50 ${fmt.ms(r.p50).padStart(6)} ms  p99 ${fmt
      .ms(r.p99)
      .padStart(
        6,
      )} ms${bad ? `  (${r.non2xx} non-2xx, ${r.errors} errors, ${r.mismatches} wrong bodies)` : ''}${
      r.otherCpuShare > 0.1 ? `  [other processes: ${Math.round(r.otherCpuShare * 100)}% of a core]` : ''
    }`,
  );
  return r;
}

/** The 1-minute load average (how busy the machine was; the report says so). */
function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

function summariseCell(runs: CellRun[]): Omit<Cell, 'target' | 'path' | 'connections'> {
  return {
    runs,
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    otherCpuShare: median(runs.map((r) => r.otherCpuShare)),
    loadavg: median(runs.map((r) => r.loadavg)),
    failures: runs.reduce((n, r) => n + r.non2xx + r.errors + r.timeouts + r.mismatches, 0),
    cpuUsPerReq: Object.fromEntries(
      Object.keys(runs[0]?.cpuS ?? {}).map((k) => [
        k,
        median(runs.map((r) => (Number(r.cpuS[k]) / Math.max(1, r.ok + r.non2xx)) * 1e6)),
      ]),
    ),
    sysUsPerReq: Object.fromEntries(
      Object.keys(runs[0]?.sysS ?? {}).map((k) => [
        k,
        median(runs.map((r) => (Number(r.sysS[k]) / Math.max(1, r.ok + r.non2xx)) * 1e6)),
      ]),
    ),
    loadgenUsPerReq: median(runs.map((r) => (r.loadgenCpuS / Math.max(1, r.ok + r.non2xx)) * 1e6)),
  };
}

async function benchmark(opts: Options, runDir: string): Promise<BenchResults> {
  const inventory = writeInventory(runDir);
  const chain = await startChain({
    logDir: runDir,
    agentArgs: ['--resolver', 'inventory', '--inventory-file', inventory],
    logLevel: opts.logLevel,
    nodeArgs: opts.nodeArgs,
  });
  const raw: Record<string, RawCell> = {};
  const memory: BenchResults['memory'] = {};
  const put: Put = (target, path, conns, r) => {
    const key = `${target}|${path}|${conns}`;
    const cell = raw[key] ?? { target, path, connections: conns, runs: [] };
    raw[key] = cell;
    cell.runs.push(r);
  };
  const procs = [chain.proxy!, chain.agent, chain.nova];
  let bare: BareChain | undefined;
  try {
    if (opts.compareBare) {
      bare = await startBareChain({ chain, inventoryFile: inventory, nodeArgs: opts.nodeArgs });
      procs.push(bare.proxy, bare.agent);
    }
    const expected = await precheck(chain, opts, bare);
    memory.idle = memoryAll(procs);
    const url: Record<string, string | undefined> = {
      chain: chain.proxyUrl,
      direct: chain.novaUrl,
      bare: bare?.proxyUrl,
    };
    const spec = (target: string, name: string, connections: number, durationS: number): LoadSpec => ({
      url: `${url[target]}${pathOf(name)}`,
      connections,
      durationS,
      headers: target === 'direct' ? directHeaders(chain.secret) : {},
      expectBody: expected[name]!,
      tool: opts.loadTool,
    });
    const targets = ['chain', ...(opts.direct ? ['direct'] : []), ...(bare ? ['bare'] : [])];
    if (opts.warmupS > 0) {
      log(`warm-up (${opts.warmupS} s per path and target)`);
      for (const name of opts.paths)
        for (const target of targets) await runLoad(spec(target, name, 10, opts.warmupS));
    }
    for (let run = 1; run <= opts.runs; run++) {
      log(`run ${run}/${opts.runs}`);
      // Every other round in the opposite order, so that neither side always runs first.
      const order = run % 2 === 1 ? targets : [...targets].reverse();
      for (const name of opts.paths)
        for (const c of opts.connections)
          for (const target of order)
            put(
              target,
              name,
              c,
              await measure(
                `${target} ${name} c=${c}`,
                spec(target, name, c, opts.durationS),
                procs,
                {},
                opts.quietS,
              ),
            );
    }
    const afterLoad = memoryAll(procs);
    memory.afterLoad = afterLoad;

    if (opts.netns) {
      const mem = await netnsCells(opts, chain, expected, put);
      if (mem) afterLoad['proxy (netns)'] = mem;
    }
  } finally {
    await bare?.stop();
    await chain.stop();
    trimLogs(runDir);
  }
  const cells: Record<string, Cell> = {};
  for (const [key, cell] of Object.entries(raw)) cells[key] = { ...cell, ...summariseCell(cell.runs) };
  const results: BenchResults = { cells, memory };
  // chain/direct per run (same run, same conditions), then the median of those ratios.
  for (const cell of Object.values(results.cells)) {
    if (cell.target !== 'chain') continue;
    const direct = results.cells[`direct|${cell.path}|${cell.connections}`];
    if (!direct) continue;
    cell.ratio = median(cell.runs.map((r, i) => r.rps / (direct.runs[i]?.rps ?? Number.NaN)));
  }
  return results;
}

type Put = (target: string, path: string, connections: number, run: CellRun) => void;

function memoryAll(procs: readonly Service[]): Record<string, Memory> {
  return Object.fromEntries(procs.map((p) => [p.name, memoryOf(p.pid)]));
}

async function netnsCells(
  opts: Options,
  chain: BenchChain,
  expected: Record<string, string>,
  put: Put,
): Promise<Memory | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    log('--netns needs root; skipped');
    return undefined;
  }
  const { NetnsLab, rootSkipReason, uniquePrefix } = await import('@nmp/testkit');
  const why = rootSkipReason();
  if (why) {
    log(`--netns: ${why}; skipped`);
    return undefined;
  }
  const lab = new NetnsLab({ prefix: uniquePrefix('nmpb') });
  try {
    const dhcp = await lab.addNamespace('dhcp');
    const vm = await lab.addNamespace('vm');
    const { dev1, dev2 } = await lab.addVethPair(dhcp, vm);
    await lab.addAddress(dhcp, dev1, `${NETNS.dhcpIp}/24`);
    await lab.addAddress(dhcp, dev1, `${NETNS.metadataIp}/32`);
    await lab.addAddress(vm, dev2, `${NETNS.vmIp}/24`);
    // What DHCP option 121 gives an instance on an isolated network: the metadata address via the DHCP port.
    await lab.addRoute(vm, `${NETNS.metadataIp}/32`, { via: NETNS.dhcpIp });
    const px = await chain.startProxy('proxy-netns', {
      host: NETNS.metadataIp,
      port: 80,
      wrap: ['ip', 'netns', 'exec', dhcp],
    });
    lab.defer(() => px.proc.stop());
    await lab.waitForListen(dhcp, 80);
    const first = opts.paths[0] ?? '';
    const check = await lab.httpGet(vm, `http://${NETNS.metadataIp}${pathOf(first)}`);
    if (check.status !== 200 || check.text !== expected[first])
      throw new Error(`netns check: HTTP ${check.status}: ${check.text}`);
    const wrap = ['ip', 'netns', 'exec', vm];
    const procs = [px.proc, chain.agent, chain.nova];
    const spec = (name: string, connections: number, durationS: number): LoadSpec => ({
      url: `http://${NETNS.metadataIp}${pathOf(name)}`,
      connections,
      durationS,
      expectBody: expected[name]!,
      tool: opts.loadTool,
    });
    if (opts.warmupS > 0)
      for (const name of opts.paths) await runLoad(spec(name, 10, opts.warmupS), { wrap });
    for (let run = 1; run <= opts.runs; run++) {
      log(`netns run ${run}/${opts.runs}`);
      for (const name of opts.paths)
        for (const c of opts.connections)
          put(
            'netns',
            name,
            c,
            await measure(
              `netns ${name} c=${c}`,
              spec(name, c, opts.durationS),
              procs,
              { wrap },
              opts.quietS,
            ),
          );
    }
    return memoryOf(px.proc.pid);
  } finally {
    await lab.cleanup();
  }
}

/** The boot storm in its own process (it starts its own chain); resolves to its JSON summary. */
function bootStorm(opts: Options): Promise<StormSummary> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        join(BENCH_DIST, 'boot-storm.js'),
        '--json',
        '--runs',
        String(opts.stormRuns),
        '--instances',
        String(opts.stormInstances),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as StormSummary);
      } catch (e) {
        reject(new Error(`boot storm failed (${(e as Error).message})`));
      }
    });
  });
}

async function profile(opts: Options, runDir: string): Promise<ProfileRun> {
  const profDir = join(runDir, 'profiles');
  mkdirSync(profDir, { recursive: true });
  const chain = await startChain({
    logDir: runDir,
    cpuProf: profDir,
    logLevel: opts.logLevel,
    nodeArgs: opts.nodeArgs,
  });
  let bare: BareChain | undefined;
  try {
    if (opts.compareBare)
      bare = await startBareChain({
        chain,
        inventoryFile: join(SAMPLE_DIR, 'inventory.json'),
        nodeArgs: opts.nodeArgs,
        cpuProf: profDir,
      });
    const body = (await get(`${chain.proxyUrl}${pathOf('instance-id')}`)).body;
    if (!EXPECT['instance-id']?.(body)) throw new Error(`profile chain: unexpected answer ${body}`);
    const loads: [string, string, Service[]][] = [
      ['chain', chain.proxyUrl!, [chain.proxy!, chain.agent, chain.nova]],
    ];
    if (bare) {
      const viaBare = (await get(bare.proxyUrl + pathOf('instance-id'))).body;
      if (viaBare !== body) throw new Error(`profile bare chain: unexpected answer ${viaBare}`);
      loads.push(['bare', bare.proxyUrl, [bare.proxy, bare.agent, chain.nova]]);
    }
    const rps: Record<string, number> = {};
    for (const [target, url, procs] of loads) {
      log(
        `profiling ${target}: 50 connections, instance-id, ${opts.profileDurationS} s (after a 2 s warm-up)`,
      );
      const spec = {
        url: url + pathOf('instance-id'),
        connections: 50,
        expectBody: body,
        tool: opts.loadTool,
      };
      await runLoad({ ...spec, durationS: 2 });
      const r = await measure(
        `${target} instance-id c=50 (profiled)`,
        { ...spec, durationS: opts.profileDurationS },
        procs,
        {},
        opts.quietS,
      );
      rps[target] = r.rps;
    }
    await bare?.stop();
    await chain.stop();
    const summaries: Record<string, { summary: ProfileSummary; markdown: string }> = {};
    const names = ['proxy', 'agent', 'nova', ...(bare ? ['bare-proxy', 'bare-agent'] : [])];
    for (const name of names) {
      const file = join(profDir, `${name}.cpuprofile`);
      if (!existsSync(file)) {
        log(`no profile written for ${name} (${file}); did it exit cleanly on SIGTERM?`);
        continue;
      }
      const target = name.startsWith('bare-') ? 'bare' : 'chain';
      const what =
        name === 'nova' && bare
          ? `both loads (ours, then the bare chain's), ${fmt.int(rps.chain)} and ${fmt.int(rps.bare)} req/s while profiled`
          : `${target === 'bare' ? 'the bare chain (packages/bench/src/bare/)' : 'chain'} instance-id, 50 connections, ${opts.profileDurationS} s, ${fmt.int(rps[target])} req/s while profiled`;
      const summary = summariseProfileFile(file, {
        title: `${name}: CPU profile under 50-connection load`,
        context: `\`npm run bench -- --profile${bare ? ' --compare-bare' : ''}\`, ${new Date().toISOString().slice(0, 10)}: ${what} (profiling slows it down); node ${process.version}.`,
        foldedFile: join(profDir, `${name}.folded`),
        svgFile: join(profDir, `${name}.svg`),
      });
      summaries[name] = summary;
      if (opts.write) {
        mkdirSync(opts.profileDir, { recursive: true });
        const mdFile = join(opts.profileDir, `${name}.md`);
        writeFileSync(mdFile, summary.markdown);
        log(`wrote ${relative(ROOT, mdFile)} (flame graph: ${relative(ROOT, join(profDir, `${name}.svg`))})`);
      } else {
        process.stdout.write(`${summary.markdown}\n`);
      }
    }
    return { dir: relative(ROOT, profDir), rps: rps.chain ?? Number.NaN, summaries };
  } finally {
    await bare?.stop();
    await chain.stop();
    trimLogs(runDir);
  }
}

function printTables(opts: Options, results: BenchResults): Table {
  const rows: (string | number)[][] = [];
  for (const name of opts.paths)
    for (const c of opts.connections) {
      const ch = results.cells[`chain|${name}|${c}`];
      const d = results.cells[`direct|${name}|${c}`];
      const ns = results.cells[`netns|${name}|${c}`];
      rows.push([
        name,
        c,
        fmt.int(ch?.rps),
        fmt.ms(ch?.p50),
        fmt.ms(ch?.p99),
        fmt.int(d?.rps),
        fmt.ms(d?.p50),
        fmt.ms(d?.p99),
        fmt.ratio(ch?.ratio),
        ...(opts.netns ? [fmt.int(ns?.rps), fmt.ms(ns?.p50), fmt.ms(ns?.p99)] : []),
      ]);
    }
  const header = [
    'path',
    'conns',
    'chain req/s',
    'p50 ms',
    'p99 ms',
    'direct req/s',
    'p50 ms',
    'p99 ms',
    'chain/direct',
    ...(opts.netns ? ['netns req/s', 'p50 ms', 'p99 ms'] : []),
  ];
  return { header, rows };
}

/** Per chain cell, the run during which other processes used the least CPU: the figures least disturbed. */
function quietestRows(opts: Options, results: BenchResults): Table {
  const rows: (string | number)[][] = [];
  for (const name of opts.paths)
    for (const c of opts.connections) {
      const ch = results.cells[`chain|${name}|${c}`];
      if (!ch) continue;
      const r = ch.runs.reduce((a, b) => ((b.otherCpuShare ?? 1) < (a.otherCpuShare ?? 1) ? b : a));
      rows.push([
        name,
        c,
        fmt.int(r.rps),
        fmt.ms(r.p50),
        fmt.ms(r.p99),
        `${Math.round((r.otherCpuShare ?? Number.NaN) * 100)}%`,
      ]);
    }
  return { header: ['path', 'conns', 'chain req/s', 'p50 ms', 'p99 ms', 'others used (of a core)'], rows };
}

/** CPU time per answered request of each process in the chain cells (user+system, and the system part). */
function cpuRows(opts: Options, results: BenchResults): Table {
  const rows: (string | number)[][] = [];
  for (const name of opts.paths)
    for (const c of opts.connections) {
      const ch = results.cells[`chain|${name}|${c}`];
      if (!ch) continue;
      const cell = (k: string): string => `${fmt.int(ch.cpuUsPerReq[k])} (${fmt.int(ch.sysUsPerReq[k])})`;
      const sum =
        ['proxy', 'agent', 'nova'].reduce((n, k) => n + Number(ch.cpuUsPerReq[k]), 0) + ch.loadgenUsPerReq;
      rows.push([
        name,
        c,
        cell('proxy'),
        cell('agent'),
        cell('nova'),
        fmt.int(ch.loadgenUsPerReq),
        fmt.int(sum),
      ]);
    }
  return {
    header: ['path', 'conns', 'proxy µs', 'agent µs', 'nova µs', 'load generator µs', 'total µs'],
    rows,
  };
}

function memoryRows(memory: BenchResults['memory']): Table {
  const rows: (string | number)[][] = [];
  for (const [name, m] of Object.entries(memory.afterLoad ?? {})) {
    const idle: Memory = memory.idle?.[name] ?? {};
    rows.push([
      name,
      fmt.mb(idle.rssKb),
      fmt.mb(m.rssKb),
      `${fmt.mb(m.anonKb)} / ${fmt.mb(m.fileKb)}`,
      fmt.mb(m.hwmKb),
      fmt.mb(m.pssKb),
    ]);
  }
  return {
    header: [
      'process',
      'RSS idle MB',
      'RSS after load MB',
      'of which anon / file MB',
      'peak RSS MB',
      'PSS after load MB',
    ],
    rows,
  };
}

function evaluateTargets(
  opts: Options,
  results: BenchResults | undefined,
  storm: StormSummary | undefined,
): RunTarget[] {
  const out: RunTarget[] = [];
  const ch50 = results?.cells[`chain|instance-id|50`];
  const ch1 = results?.cells[`chain|instance-id|1`];
  // The targets hold with info logging and default node flags; other runs are experiments.
  const standard = opts.logLevel === 'info' && opts.nodeArgs.length === 0;
  const add = (name: string, target: string, value: string, met: boolean): number =>
    out.push({ name: standard ? name : `${name} [experiment]`, target, value, met: met && standard });
  if (ch50) {
    add(
      '50 connections through the chain (instance-id): requests/s',
      `>= ${fmt.int(TARGETS.chainRps)}`,
      fmt.int(ch50.rps),
      ch50.rps >= TARGETS.chainRps,
    );
    add(
      '50 connections through the chain (instance-id): p99',
      `<= ${TARGETS.chainP99Ms} ms`,
      `${fmt.ms(ch50.p99)} ms`,
      ch50.p99 <= TARGETS.chainP99Ms,
    );
    add(
      "50 connections through the chain: times Neutron's chain (1,600 req/s, its best)",
      '>= 6x',
      `${(ch50.rps / 1600).toFixed(1)}x`,
      ch50.rps / 1600 >= 6,
    );
  }
  if (ch1)
    add(
      '1 connection through the chain (instance-id): p50',
      `<= ${TARGETS.oneConnP50Ms} ms`,
      `${fmt.ms(ch1.p50)} ms`,
      ch1.p50 <= TARGETS.oneConnP50Ms,
    );
  if (storm) {
    add(
      `boot storm (${storm.instances} instances): time to last answer`,
      `<= ${TARGETS.stormSeconds} s`,
      `${storm.medianSeconds.toFixed(2)} s`,
      storm.medianSeconds <= TARGETS.stormSeconds && storm.allOk,
    );
    add(
      'boot storm: Neutron port lookups per instance',
      '<= 1',
      storm.maxLookupsPerInstance.toFixed(2),
      storm.maxLookupsPerInstance <= 1,
    );
  }
  const mem = results?.memory.afterLoad;
  if (mem?.agent)
    add(
      'agent RSS after the load',
      `<= ${TARGETS.agentRssMb} MB`,
      `${fmt.mb(mem.agent.rssKb)} MB`,
      Number(mem.agent.rssKb) / 1024 <= TARGETS.agentRssMb,
    );
  if (mem?.proxy)
    add(
      'proxy RSS after the load',
      `<= ${TARGETS.proxyRssMb} MB`,
      `${fmt.mb(mem.proxy.rssKb)} MB`,
      Number(mem.proxy.rssKb) / 1024 <= TARGETS.proxyRssMb,
    );
  return out;
}

const ANALYSIS_START = '<!-- analysis:start (kept by npm run bench; edit freely) -->';
const ANALYSIS_END = '<!-- analysis:end -->';

function keptAnalysis(file: string): string {
  try {
    const old = readFileSync(file, 'utf8');
    const a = old.indexOf(ANALYSIS_START);
    const b = old.indexOf(ANALYSIS_END);
    if (a >= 0 && b > a) return old.slice(a + ANALYSIS_START.length, b).trim();
  } catch {
    // first report
  }
  return '_No analysis written yet._';
}

/**
 * Sections other programs own in the same file (e.g. daemon-1000 writes one between
 * `<!-- daemon-mode:start ... -->` and `<!-- daemon-mode:end -->`): kept as they are, after ours.
 */
function foreignSections(file: string): string[] {
  let old = '';
  try {
    old = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const m of old.matchAll(/<!-- ([a-z0-9-]+):start[^>]*-->[\s\S]*?<!-- \1:end -->/g))
    if (m[1] !== 'analysis') out.push(m[0]);
  return out;
}

function report(opts: Options, ctx: ReportContext): string {
  const { machine, results, storm, targets, prof, command, date, elapsedS } = ctx;
  const t = printTables(opts, results);
  const m = memoryRows(results.memory);
  const lines: string[] = [];
  lines.push('# Benchmarks', '');
  lines.push(
    'Generated by `npm run bench` (packages/bench/src/run.ts); the section "Analysis" is kept across runs. Figures',
    "come from this benchmark, never from timed tests. Reference: issue 6 and Neutron's own chain below.",
    '',
  );
  lines.push('## Run', '');
  lines.push(`- Command: \`${command}\``);
  lines.push(`- Date: ${date}${Number.isFinite(elapsedS) ? ` (took ${Math.round(elapsedS)} s)` : ''}`);
  lines.push(
    `- Machine: ${machine.nproc} cores (${machine.model}), ${machine.memoryGiB} GiB memory, Linux ${machine.kernel}`,
  );
  lines.push(`- Node: ${machine.node}`);
  lines.push(
    `- Load: ${loadToolText(opts.loadTool ?? 'autocannon')} on the same machine, keep-alive, pipelining 1; ${opts.runs} runs per cell of ${opts.durationS} s each (after a ${opts.warmupS} s warm-up per path and target), medians shown; chain and direct alternate within each run.`,
  );
  lines.push(
    `- Chain: ${opts.loadTool ?? 'autocannon'} -> ns-metadata-proxy (127.0.0.1, network mode) -> UNIX socket -> metadata-agent (inventory resolver, info logging to a file) -> nova-metadata-dev (127.0.0.1, log level warn). Agent and proxy run with the node flags the systemd units and the hooks use (\`${SERVICE_NODE_FLAGS.join(' ')}\`). Direct: the same requests sent straight to nova-metadata-dev with the signed identity headers the agent would add.`,
  );
  if (opts.logLevel !== 'info' || opts.nodeArgs.length > 0)
    lines.push(
      `- **Not the standard configuration**: agent and proxy log level ${opts.logLevel}${opts.nodeArgs.length ? `, node flags \`${opts.nodeArgs.join(' ')}\`` : ''}.`,
    );
  if (opts.netns)
    lines.push(
      `- netns: ${opts.loadTool ?? 'autocannon'} inside an instance network namespace (10.247.0.5) -> veth -> a qdhcp-style namespace where a second proxy listens on 169.254.169.254:80 -> the same agent and Nova.`,
    );
  lines.push('');
  lines.push('## Throughput and latency', '');
  lines.push(
    mdTable(
      t.header,
      t.rows.map((r) => r.map(String)),
      t.header.map((_, i) => (i === 0 ? 'l' : 'r')),
    ),
  );
  lines.push('');
  lines.push('chain/direct: median over the runs of (chain req/s ÷ direct req/s) in the same run.');
  const others = Object.values(results.cells).flatMap((c) => c.runs.map((r) => r.otherCpuShare));
  lines.push(
    '',
    `Other processes on the machine used a median ${Math.round(median(others) * 100)}% of a core (at most ${Math.round(
      Math.max(...others) * 100,
    )}%) while the cells ran (machine busy time from /proc/stat minus the chain's and the load generator's).`,
  );
  if (median(others) > 0.2)
    lines.push(
      '',
      '**The machine was busy with other work during this run: these figures understate the chain. Run again on a quiet machine.**',
    );
  if (opts.runs > 1) {
    const q = quietestRows(opts, results);
    lines.push(
      '',
      'The chain in the quietest of the runs of each cell (the run in which other processes used the least CPU), for comparison with the medians:',
      '',
      mdTable(q.header, q.rows),
    );
  }
  const failures = Object.values(results.cells).reduce((n, c) => n + c.failures, 0);
  lines.push(
    '',
    failures === 0
      ? 'Every answer was a 200 with the expected body.'
      : `**${failures} failed or wrong answers** (see bench-results/).`,
  );
  const cpu = cpuRows(opts, results);
  lines.push('', '## Where the CPU goes (chain)', '');
  lines.push(mdTable(cpu.header, cpu.rows));
  lines.push(
    '',
    'CPU time (user + system, from /proc/<pid>/stat; the system part in parentheses) each process used during a chain cell, divided by the requests answered (medians over the runs). With two cores, req/s can at best be about 2,000,000 ÷ total µs.',
  );
  lines.push('', '## Memory', '');
  lines.push(mdTable(m.header, m.rows));
  lines.push(
    '',
    "RSS from /proc/<pid>/status (VmRSS, VmHWM; RssAnon is the process's own memory, RssFile mostly node's executable, about 36 MB, shared by every node process), PSS from /proc/<pid>/smaps_rollup, read after the loopback load. For scale, a bare `node` (v20) idles at about 43 MB RSS.",
  );
  if (storm) {
    lines.push('', '## Boot storm', '');
    lines.push(
      `${storm.instances} instances, each with its own source address (127.x.y.z on loopback), all started at once, each running cloud-init's sequence (${storm.sequence.join(', ')}) with a new connection per request, through proxy -> agent (Neutron resolver, port cache on) -> Nova; a fake Keystone + Neutron answering port lookups after ${storm.neutronLatencyMs} ms. ${storm.runs.length} runs, each with freshly started processes (empty cache).`,
      '',
    );
    lines.push(
      mdTable(
        [
          'run',
          'time to last answer s',
          'requests',
          'failed',
          'Neutron port lookups',
          'token requests',
          'p50 ms',
          'p99 ms',
        ],
        storm.runs.map((r, i) => [
          String(i + 1),
          r.seconds.toFixed(2),
          fmt.int(r.requests),
          fmt.int(r.failed),
          fmt.int(r.neutron.portLookups),
          fmt.int(r.neutron.tokenRequests),
          fmt.ms(r.p50),
          fmt.ms(r.p99),
        ]),
      ),
    );
    lines.push(
      '',
      `Median time to last answer: ${storm.medianSeconds.toFixed(2)} s; most port lookups per instance in a run: ${storm.maxLookupsPerInstance.toFixed(2)}.`,
    );
  }
  lines.push('', '## Targets (issue 6)', '');
  lines.push(
    mdTable(
      ['target', 'goal', 'measured', 'met'],
      targets.map((x) => [x.name, x.target, x.value, x.met ? 'yes' : '**no**']),
      ['l', 'l', 'r', 'l'],
    ),
  );
  lines.push('', "## Reference: Neutron's chain on this machine kind", '');
  lines.push(
    'haproxy 2.6 + neutron-metadata-agent 21 (port lookup in memory, a fast Nova stand-in), GET /latest/meta-data/instance-id, keep-alive clients, load generator on the same 2-core machine (from issue 6):',
    '',
    '- 50 connections: 900–1,600 requests/s, p99 63–139 ms. 1 connection: ~740 requests/s, p50 1.3 ms.',
    '- Memory: the agent 280 MB RSS (1 worker), each per-network haproxy 7.5 MB RSS / 5 MB PSS.',
  );
  lines.push('', '## Profiles', '');
  if (prof)
    lines.push(
      `This run's CPU profiles under 50-connection load (raw .cpuprofile, folded stacks and SVG flame graphs in ${prof.dir}/, not committed).`,
      '',
    );
  const profileDocs = existsSync(join(ROOT, 'docs/profiles'))
    ? readdirSync(join(ROOT, 'docs/profiles')).filter((f) => f.endsWith('.md'))
    : [];
  const link = (f: string): string => `[${f.replace(/\.md$/, '')}](profiles/${f})`;
  const steadyDocs = profileDocs.filter((f) => !f.startsWith('boot-storm-'));
  const stormDocs = profileDocs.filter((f) => f.startsWith('boot-storm-'));
  if (steadyDocs.length)
    lines.push(
      `- 50 connections through the chain (\`npm run bench -- --profile\`): ${steadyDocs.map(link).join(', ')}`,
    );
  if (stormDocs.length)
    lines.push(`- Boot storm (\`npm run bench:boot-storm -- --profile\`): ${stormDocs.map(link).join(', ')}`);
  lines.push('', '## Analysis', '', ANALYSIS_START, '', keptAnalysis(opts.out), '', ANALYSIS_END, '');
  for (const section of foreignSections(opts.out)) lines.push(section, '');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const opts = parseOptions();
  if (opts.reportFrom) {
    const saved = JSON.parse(readFileSync(resolve(opts.reportFrom), 'utf8')) as SavedRun;
    const o: Options = {
      ...saved.opts,
      out: opts.out,
      logLevel: saved.opts.logLevel ?? 'info',
      nodeArgs: saved.opts.nodeArgs ?? [],
    };
    if (o.compareBare) {
      writeCompareBareSection(opts.out, o, {
        ...saved,
        command: String(saved.command),
        elapsedS: saved.elapsedS ?? Number.NaN,
      });
      log(`wrote the bare-chain section of ${relative(ROOT, opts.out)} from ${opts.reportFrom}`);
      return;
    }
    const targets = evaluateTargets(o, saved.results, saved.storm);
    writeFileSync(
      opts.out,
      report(o, {
        ...saved,
        targets,
        command: saved.command ?? 'npm run bench',
        elapsedS: saved.elapsedS ?? Number.NaN,
      }),
    );
    log(`wrote ${relative(ROOT, opts.out)} from ${opts.reportFrom}`);
    return;
  }
  requireBuilt();
  const started = Date.now();
  const date = new Date().toISOString();
  const runDir = resultsDir(`run-${stamp()}`);
  const machine = machineInfo();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  log(
    `bench: ${machine.nproc} cores (${machine.model}), node ${machine.node}; logs in ${relative(ROOT, runDir)}/`,
  );

  let results: BenchResults | undefined;
  let storm: StormSummary | undefined;
  let prof: ProfileRun | undefined;
  if (opts.benchmark) {
    results = await benchmark(opts, runDir);
    const t = printTables(opts, results);
    process.stdout.write(`\n${textTable(t.header, t.rows)}\n\n`);
    const cpu = cpuRows(opts, results);
    process.stdout.write(
      `CPU per request through the chain, user+system (system):\n${textTable(cpu.header, cpu.rows)}\n\n`,
    );
    const m = memoryRows(results.memory);
    process.stdout.write(`${textTable(m.header, m.rows)}\n\n`);
    if (opts.compareBare) process.stdout.write(printCompareBare(opts, results));
  }
  if (opts.bootStorm) {
    log('boot storm');
    storm = await bootStorm(opts);
  }
  if (opts.profile) prof = await profile(opts, runDir);
  if (!opts.benchmark || !results) return;

  const runTargets = opts.compareBare ? undefined : evaluateTargets(opts, results, storm);
  const targets = runTargets ?? compareBareTargets(opts, results);
  if (runTargets)
    process.stdout.write(
      `${textTable(
        ['target', 'goal', 'measured', 'met'],
        runTargets.map((x) => [x.name, x.target, x.value, x.met ? 'yes' : 'NO']),
      )}\n`,
    );
  const elapsedS = (Date.now() - started) / 1000;
  const json = join(runDir, 'results.json');
  writeFileSync(
    json,
    JSON.stringify({ opts, machine, date, command, elapsedS, results, storm, targets, prof }, null, 2),
  );
  if (opts.write && opts.compareBare) {
    // Only the comparison's own section: the rest of the page belongs to the full run.
    writeCompareBareSection(opts.out, opts, { machine, results, command, date, elapsedS });
    log(`\nwrote the bare-chain section of ${relative(ROOT, opts.out)} and ${relative(ROOT, json)}`);
  } else if (opts.write) {
    writeFileSync(
      opts.out,
      report(opts, { machine, results, storm, targets: runTargets ?? [], prof, command, date, elapsedS }),
    );
    log(`\nwrote ${relative(ROOT, opts.out)} and ${relative(ROOT, json)} (${Math.round(elapsedS)} s)`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
