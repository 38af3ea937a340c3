#!/usr/bin/env node
// `npm run bench:release`: the release tree (bundled programs, its own stripped node) against this build
// tree, measured alternately in the same run, so the machine's load falls on both alike:
//   - sizes: the .deb, the tarball, the installed size;
//   - start to listening: from spawn to the first accepted connection, agent (UNIX socket) and proxy (TCP);
//   - RSS idle (2 s after listening) and after a load;
//   - the chain under load (wrk or autocannon, /latest/meta-data/instance-id): req/s, p50, p99, and CPU
//     microseconds per request answered of the proxy and of the agent, from /proc/<pid>/stat.
// Options: --tarball FILE (default: build one with the release builder into bench-results/release-<stamp>/),
//          --rounds N (default 5), --starts N start measurements per round (default 5),
//          --duration S per load cell (default 8), --connections C (default 50), --load-tool wrk|autocannon.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SERVICE_NODE_FLAGS } from '@nmp/common';
import {
  cpuSecondsOf,
  fmt,
  freePort,
  type Memory,
  machineInfo,
  mdTable,
  median,
  memoryOf,
  NETWORK_ID,
  programsOf,
  requireBuilt,
  resultsDir,
  runLoad,
  SAMPLE_DIR,
  type Service,
  sleep,
  stamp,
  startChain,
  startNode,
  waitForQuiet,
} from './index.js';

const { values } = parseArgs({
  options: {
    tarball: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    starts: { type: 'string', default: '5' },
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '50' },
    'load-tool': { type: 'string', default: 'auto' },
    'quiet-wait': { type: 'string', default: '20' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'usage: npm run bench:release [-- --tarball FILE] [--rounds 5] [--starts 5] [--duration 8] [--connections 50] [--load-tool wrk|autocannon]\n',
  );
  process.exit(0);
}
type IntOption = 'rounds' | 'starts' | 'duration' | 'connections' | 'quiet-wait';
const int = (name: IntOption, min: number, max: number): number => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`bench:release: --${name} must be an integer ${min}-${max}\n`);
    process.exit(2);
  }
  return n;
};
const rounds = int('rounds', 1, 50);
const starts = int('starts', 1, 50);
const durationS = int('duration', 2, 120);
const connections = int('connections', 1, 1000);
const quietWait = int('quiet-wait', 0, 600);
const haveWrk = spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
const tool = values['load-tool'] === 'auto' ? (haveWrk ? 'wrk' : 'autocannon') : values['load-tool'];
requireBuilt();

const out = resultsDir(`release-${stamp()}`);
const work = mkdtempSync(join(tmpdir(), 'nmp-bench-release-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const say = (m: string): void => {
  process.stdout.write(`bench:release: ${m}\n`);
};

// The artefacts: given, or built now from this tree.
let tarball = values.tarball;
let deb: string | undefined;
if (tarball === undefined) {
  const { buildRelease } = await import('@nmp/release');
  say('building the release (npm run package) ...');
  const r = await buildRelease({ outDir: join(out, 'artefacts'), log: (m) => say(m) });
  if (r.tarball === undefined) throw new Error('the release builder made no tarball');
  tarball = r.tarball;
  deb = r.deb;
}
mkdirSync(join(work, 'tree'));
const untar = spawnSync('tar', ['-xzf', tarball, '-C', join(work, 'tree')], { encoding: 'utf8' });
if (untar.status !== 0) throw new Error(`tar -xzf ${tarball}: ${untar.stderr}`);
const top = spawnSync('ls', [join(work, 'tree')], { encoding: 'utf8' }).stdout.trim();
const releaseRoot = join(work, 'tree', top);
const installedKiB = deb
  ? Number(spawnSync('dpkg-deb', ['-f', deb, 'Installed-Size'], { encoding: 'utf8' }).stdout.trim())
  : Number.NaN;
const sizes = {
  debMB: deb ? statSync(deb).size / 1e6 : Number.NaN,
  tarballMB: statSync(tarball).size / 1e6,
  installedMB: installedKiB / 1024,
};
say(`release tree: ${releaseRoot}`);

interface Tree {
  readonly name: string;
  /** undefined: this build tree. */
  readonly releaseRoot: string | undefined;
}

const TREES: Tree[] = [
  { name: 'build tree', releaseRoot: undefined },
  { name: 'release tree', releaseRoot },
];

interface Start {
  agentMs: number;
  proxyMs: number;
  agentIdle: Memory;
  proxyIdle: Memory;
}

interface Load {
  round: number;
  rps: number;
  p50: number | null;
  p99: number | null;
  errors: number;
  proxyUs: number;
  agentUs: number;
  proxyAfter: Memory;
  agentAfter: Memory;
}

/** Milliseconds from spawn until `target` accepts a connection (polled every 2 ms). */
async function timeToListen(
  proc: Service,
  target: { path: string } | { host: string; port: number },
  t0: bigint,
): Promise<number> {
  for (;;) {
    if (proc.alive() !== true) throw new Error(`${proc.name}: ${proc.alive()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(target);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return Number(process.hrtime.bigint() - t0) / 1e6;
    if (Number(process.hrtime.bigint() - t0) > 20e9) throw new Error(`${proc.name} did not listen in 20 s`);
    await sleep(2);
  }
}

/** One start of the agent and one of the proxy (on that agent) from `tree`; times and idle RSS. */
async function measureStart(tree: Tree, n: string): Promise<Start> {
  const dir = mkdtempSync(join(work, 'start-'));
  const p = programsOf(tree.releaseRoot);
  const socketPath = join(dir, 'agent.sock');
  const env = { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: 'bench-release' };
  let t0 = process.hrtime.bigint();
  const agent = startNode(
    `agent-${n}`,
    p.agent,
    [
      '--metadata-proxy-socket',
      socketPath,
      '--resolver',
      'inventory',
      '--inventory-file',
      join(SAMPLE_DIR, 'inventory.json'),
      '--nova-metadata-port',
      '9',
      '--log-level',
      'warn',
    ],
    { env, logDir: dir, nodeArgs: SERVICE_NODE_FLAGS, node: p.node },
  );
  const proxyPort = await freePort();
  try {
    const agentMs = await timeToListen(agent, { path: socketPath }, t0);
    t0 = process.hrtime.bigint();
    const proxy = startNode(
      `proxy-${n}`,
      p.proxy,
      [
        '--bind',
        `127.0.0.1:${proxyPort}`,
        '--network-id',
        NETWORK_ID,
        '--metadata-proxy-socket',
        socketPath,
        '--log-level',
        'warn',
      ],
      { env: { PATH: process.env.PATH ?? '' }, logDir: dir, nodeArgs: SERVICE_NODE_FLAGS, node: p.node },
    );
    try {
      const proxyMs = await timeToListen(proxy, { host: '127.0.0.1', port: proxyPort }, t0);
      await sleep(2000);
      return { agentMs, proxyMs, agentIdle: memoryOf(agent.pid), proxyIdle: memoryOf(proxy.pid) };
    } finally {
      await proxy.stop();
    }
  } finally {
    await agent.stop();
  }
}

/** The chain from `tree` under load: req/s, latency, CPU µs per request, RSS after. */
async function measureLoad(tree: Tree, n: number): Promise<Load> {
  const logDir = mkdtempSync(join(work, 'load-'));
  const chain = await startChain({
    logDir,
    ...(tree.releaseRoot === undefined ? {} : { releaseRoot: tree.releaseRoot }),
    logLevel: 'warn',
  });
  const proxy = chain.proxy!;
  try {
    const url = `${chain.proxyUrl}/latest/meta-data/instance-id`;
    await runLoad({ url, connections, durationS: 2, tool }); // warm-up
    const cpu0 = { proxy: cpuSecondsOf(proxy.pid), agent: cpuSecondsOf(chain.agent.pid) };
    const r = await runLoad({ url, connections, durationS, tool });
    const answered = r.ok;
    const us = (pid: number, before: number): number => ((cpuSecondsOf(pid) - before) * 1e6) / answered;
    return {
      round: n,
      rps: r.rps,
      p50: r.p50,
      p99: r.p99,
      errors: (r.non2xx ?? 0) + (r.errors ?? 0),
      proxyUs: us(proxy.pid, cpu0.proxy),
      agentUs: us(chain.agent.pid, cpu0.agent),
      proxyAfter: memoryOf(proxy.pid),
      agentAfter: memoryOf(chain.agent.pid),
    };
  } finally {
    await chain.stop();
  }
}

interface TreeResults {
  starts: Start[];
  loads: Load[];
}
const results: Record<'build' | 'release', TreeResults> = {
  build: { starts: [], loads: [] },
  release: { starts: [], loads: [] },
};
const key = (tree: Tree): 'build' | 'release' => (tree.releaseRoot === undefined ? 'build' : 'release');
const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
for (let round = 1; round <= rounds; round++) {
  // Alternate which tree goes first, so neither always gets the quieter moment.
  const order = round % 2 === 1 ? TREES : [...TREES].reverse();
  for (const tree of order) {
    await waitForQuiet(quietWait);
    for (let s = 0; s < starts; s++)
      results[key(tree)].starts.push(await measureStart(tree, `${round}-${s}`));
  }
  for (const tree of order) {
    await waitForQuiet(quietWait);
    const l = await measureLoad(tree, round);
    results[key(tree)].loads.push(l);
    say(
      `round ${round} ${tree.name}: ${fmt.int(l.rps)} req/s, p50 ${fmt.ms(l.p50)} ms, proxy ${fmt.int(l.proxyUs)} µs, agent ${fmt.int(l.agentUs)} µs per request`,
    );
  }
}
const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const med = <T>(list: T[], f: (x: T) => number | null | undefined): number => median(list.map(f));
const row = (label: string, f: (r: TreeResults) => number, format: (n: number) => string): string[] => [
  label,
  format(f(results.build)),
  format(f(results.release)),
  fmt.ratio(f(results.release) / f(results.build)),
];
const table = mdTable(
  ['', 'build tree', 'release tree', 'release / build'],
  [
    row('agent start to listening, ms (median)', (r) => med(r.starts, (s) => s.agentMs), fmt.ms),
    row('proxy start to listening, ms (median)', (r) => med(r.starts, (s) => s.proxyMs), fmt.ms),
    row('agent RSS idle, MB', (r) => med(r.starts, (s) => s.agentIdle.rssKb), fmt.mb),
    row('proxy RSS idle, MB', (r) => med(r.starts, (s) => s.proxyIdle.rssKb), fmt.mb),
    row(`chain req/s (${connections} connections)`, (r) => med(r.loads, (l) => l.rps), fmt.int),
    row('p50 ms', (r) => med(r.loads, (l) => l.p50), fmt.ms),
    row('p99 ms', (r) => med(r.loads, (l) => l.p99), fmt.ms),
    row('proxy CPU µs per request', (r) => med(r.loads, (l) => l.proxyUs), fmt.int),
    row('agent CPU µs per request', (r) => med(r.loads, (l) => l.agentUs), fmt.int),
    row('agent RSS after load, MB', (r) => med(r.loads, (l) => l.agentAfter.rssKb), fmt.mb),
    row('proxy RSS after load, MB', (r) => med(r.loads, (l) => l.proxyAfter.rssKb), fmt.mb),
  ],
);
const errors = [...results.build.loads, ...results.release.loads].reduce((a, l) => a + l.errors, 0);
const report = [
  `# bench:release ${new Date().toISOString()}`,
  '',
  `Command: npm run bench:release -- --rounds ${rounds} --starts ${starts} --duration ${durationS} --connections ${connections}; load: ${tool}.`,
  `Machine: ${JSON.stringify(machineInfo())}; load average ${load0} before, ${load1} after.`,
  `Sizes: .deb ${fmt.ratio(sizes.debMB)} MB, tarball ${fmt.ratio(sizes.tarballMB)} MB, installed ${fmt.ratio(sizes.installedMB)} MB.`,
  `Medians over ${rounds} alternating rounds (${rounds * starts} starts per tree); failed requests: ${errors}.`,
  '',
  table,
  '',
].join('\n');
writeFileSync(join(out, 'results.json'), JSON.stringify({ sizes, results }, null, 2));
writeFileSync(join(out, 'report.md'), report);
process.stdout.write(`\n${report}\nwritten to ${out}\n`);
