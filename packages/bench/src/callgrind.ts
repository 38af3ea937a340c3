#!/usr/bin/env node
// Instructions per request of one process of the chain, ours or the bare chain's (issue 22), counted by
// valgrind's callgrind: the same figure whatever else the shared machine is doing, where CPU time drifts
// by a third. One process at a time runs under valgrind (about a hundred times slower); the others run
// natively. After a warm-up (the JIT has settled) the counters are zeroed, a fixed number of requests is
// sent at a fixed concurrency, and the counters are dumped. Instructions are not time (system calls, the
// kernel's loopback work and cache misses are not in them), but the user-space work they count is what
// this issue removes, and they tell a change of 1% apart.
//
//   node packages/bench/dist/src/callgrind.js [--targets ours,bare] [--processes proxy,agent] [--requests N]
//                                    [--warmup N] [--connections C] [--new-connections] [--rounds R]
//                                    [--blocks B] [--tree DIR (ours from another built tree)]
//                                    [--log-level LEVEL (ours; default info)]
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type BareChain,
  median,
  requireBuilt,
  resultsDir,
  SAMPLE_DIR,
  stamp,
  startBareChain,
  startChain,
  textTable,
  waitForConnect,
} from './index.js';

const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: 'ours,bare' },
    processes: { type: 'string', default: 'proxy,agent' },
    requests: { type: 'string', default: '3000' },
    warmup: { type: 'string', default: '6000' },
    connections: { type: 'string', default: '10' },
    'new-connections': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    blocks: { type: 'string', default: '3' },
    tree: { type: 'string' },
    path: { type: 'string', default: '/latest/meta-data/instance-id' },
    'log-level': { type: 'string', default: 'info' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'usage: node packages/bench/dist/src/callgrind.js [--targets ours,bare] [--processes proxy,agent] [--requests N] [--warmup N] [--connections C] [--new-connections] [--rounds R] [--blocks B] [--tree DIR] [--log-level LEVEL]\n',
  );
  process.exit(0);
}
const opts = {
  targets: values.targets.split(','),
  processes: values.processes.split(','),
  requests: Number(values.requests),
  warmup: Number(values.warmup),
  connections: Number(values.connections),
  newConnections: values['new-connections'],
  rounds: Number(values.rounds),
  blocks: Number(values.blocks),
  /** Our agent and proxy from another built tree (an A/B of two builds). */
  cli: values.tree
    ? {
        agent: join(values.tree, 'packages/metadata-agent/dist/src/cli.js'),
        proxy: join(values.tree, 'packages/ns-metadata-proxy/dist/src/cli.js'),
      }
    : undefined,
  path: values.path,
  /** Our agent's and proxy's log level (info, as the targets require; warn: what logging costs). */
  logLevel: values['log-level'],
};
const isTarget = (t: string): t is Target => t === 'ours' || t === 'bare';
const isProcess = (p: string): p is ProcessName => p === 'proxy' || p === 'agent';
for (const t of opts.targets) if (!isTarget(t)) throw new Error(`unknown target ${t}`);
for (const p of opts.processes) if (!isProcess(p)) throw new Error(`unknown process ${p}`);
const targets = opts.targets.filter(isTarget);
const processes = opts.processes.filter(isProcess);
if (spawnSync('valgrind', ['--version']).error) throw new Error('valgrind is not installed');
requireBuilt();

const log = (m: string): void => {
  process.stderr.write(`${m}\n`);
};
type Target = 'ours' | 'bare';
type ProcessName = 'proxy' | 'agent';

/** `n` GET requests, `c` at a time; every answer must be a 200 with `expect` (when given). */
function load(url: string, n: number, c: number, expect?: string): Promise<void> {
  const agent = opts.newConnections ? undefined : new Agent({ keepAlive: true, maxSockets: c });
  let sent = 0;
  let done = 0;
  return new Promise<void>((resolve, reject) => {
    const one = () => {
      sent++;
      const req = request(
        url,
        { agent: agent ?? false, headers: opts.newConnections ? { connection: 'close' } : {} },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => {
            if (res.statusCode !== 200 || (expect !== undefined && body !== expect))
              return reject(new Error(`HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
            done++;
            if (done === n) {
              agent?.destroy();
              resolve();
            } else if (sent < n) one();
          });
        },
      );
      req.setTimeout(120_000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    };
    for (let i = 0; i < Math.min(c, n); i++) one();
  });
}

function control(args: string[]): void {
  const r = spawnSync('callgrind_control', args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')}: ${r.stderr}${r.stdout}`);
}

/**
 * Ir of the last dump (callgrind writes <base>.<n>-<thread> per dump and thread with --separate-threads):
 * {main, all}. The main thread runs the requests; the others are V8's (optimising compiler, GC) and
 * libuv's (file writes).
 */
function lastDumpInstructions(dir: string, base: string): { main: number; all: number } {
  const dumpOf = (f: string): number => Number(/\.(\d+)-\d+$/.exec(f)?.[1]);
  const files = readdirSync(dir).filter((f) => f.startsWith(`${base}.`) && /\.\d+-\d+$/.test(f));
  const last = Math.max(...files.map(dumpOf));
  let main = 0;
  let all = 0;
  for (const f of files.filter((x) => dumpOf(x) === last)) {
    const text = readFileSync(join(dir, f), 'utf8');
    const m = /^(?:totals|summary):\s+(\d+)/m.exec(text);
    if (!m) throw new Error(`no totals in ${f}`);
    all += Number(m[1]);
    if (f.endsWith('-01')) main = Number(m[1]);
  }
  return { main, all };
}

async function measureOne(target: Target, name: ProcessName, round: number): Promise<number> {
  const dir = resultsDir(`callgrind-${stamp()}-${target}-${name}-${round}`);
  const base = `${name}.callgrind`;
  const wrap = [
    'valgrind',
    '--tool=callgrind',
    '--smc-check=all-non-file',
    '--separate-threads=yes',
    `--callgrind-out-file=${join(dir, base)}`,
  ];
  const chain = await startChain({
    logDir: dir,
    logLevel: opts.logLevel,
    ...(target === 'ours' && name === 'proxy' ? { proxy: { wrap } } : {}),
    ...(target === 'ours' && name === 'agent' ? { agentWrap: wrap } : {}),
    startTimeoutMs: 120_000,
    ...(opts.cli ? { cli: opts.cli } : {}),
  });
  let bare: BareChain | undefined;
  try {
    if (target === 'ours' && name === 'proxy')
      await waitForConnect({ host: '127.0.0.1', port: chain.proxyPort! }, 'proxy', {
        timeoutMs: 120_000,
        alive: () => chain.proxy!.alive(),
      });
    if (target === 'bare')
      bare = await startBareChain({
        chain,
        inventoryFile: join(SAMPLE_DIR, 'inventory.json'),
        wrap: { [name]: wrap },
        startTimeoutMs: 120_000,
      });
    const url = `${target === 'ours' ? chain.proxyUrl : bare!.proxyUrl}${opts.path}`;
    const proc = target === 'ours' ? chain[name]! : bare![name];
    await load(url, opts.warmup, opts.connections);
    // Blocks of requests, each counted on its own: when the last ones agree, the JIT has settled.
    let ir = { main: Number.NaN, all: Number.NaN };
    for (let block = 1; block <= opts.blocks; block++) {
      control(['-z', String(proc.pid)]);
      const t0 = Date.now();
      await load(url, opts.requests, opts.connections);
      control(['-d', String(proc.pid)]);
      ir = lastDumpInstructions(dir, base);
      log(
        `  ${target} ${name} round ${round} block ${block}: ${Math.round(ir.main / opts.requests).toLocaleString('en-US')} instructions per request on the main thread, ${Math.round(ir.all / opts.requests).toLocaleString('en-US')} in all threads (${opts.requests} requests in ${((Date.now() - t0) / 1000).toFixed(1)} s)`,
      );
    }
    return ir.main / opts.requests;
  } finally {
    await bare?.stop(30_000);
    await chain.stop(30_000);
  }
}

const results: Record<string, number[]> = {};
log(
  `callgrind: ${opts.requests} requests after ${opts.warmup} of warm-up, ${opts.connections} at a time${opts.newConnections ? ', a new connection for each' : ''}, ${opts.path}`,
);
for (let round = 1; round <= opts.rounds; round++)
  for (const name of processes)
    for (const target of targets) {
      const list = results[`${target} ${name}`] ?? [];
      results[`${target} ${name}`] = list;
      list.push(await measureOne(target, name, round));
    }
const rows = processes.map((name) => {
  const ours = median(results[`ours ${name}`] ?? []);
  const bare = median(results[`bare ${name}`] ?? []);
  return [
    name,
    Number.isFinite(ours) ? Math.round(ours).toLocaleString('en-US') : 'n/a',
    Number.isFinite(bare) ? Math.round(bare).toLocaleString('en-US') : 'n/a',
    Number.isFinite(ours / bare) ? (ours / bare).toFixed(3) : 'n/a',
  ];
});
process.stdout.write(
  `${textTable(['process', 'ours (main thread, last block)', 'bare', 'ours/bare'], rows)}\n`,
);
process.stdout.write(`${JSON.stringify({ opts, results })}\n`);
// bench-results/callgrind-*/ keep the dumps, for callgrind_annotate.
process.exit(0);
