#!/usr/bin/env node
// A/B of two built trees on the same machine in the same minutes: the chain of this tree (B) and the chain
// of another one (A, e.g. a copy built at an earlier commit, or an installed tree), loaded alternately,
// round by round, every other round B first. Reports CPU µs per request of each proxy and agent and the
// same-round ratios B ÷ A (paired by order, lib.ts pairedRatio): on a shared machine that is what tells a change of a
// few percent from the machine's drift. Each side has its own Nova (not compared).
//
//   node packages/bench/dist/src/ab.js --base /path/to/other/tree [--rounds 6] [--duration 5] [--connections 50,1]
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type BenchChain,
  cpuTimesOf,
  fmt,
  median,
  memoryOf,
  pairedRatio,
  requireBuilt,
  resultsDir,
  runLoad,
  stamp,
  startChain,
  textTable,
  waitForQuiet,
} from './index.js';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    rounds: { type: 'string', default: '6' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50,1' },
    path: { type: 'string', default: '/latest/meta-data/instance-id' },
    'log-level': { type: 'string', default: 'info' },
    'quiet-wait': { type: 'string', default: '10' },
  },
});
if (!values.base) {
  process.stderr.write(
    'usage: node packages/bench/dist/src/ab.js --base TREE [--rounds N] [--duration S] [--connections LIST]\n',
  );
  process.exit(2);
}
requireBuilt();
const base = resolve(values.base);
const cliOf = (tree: string): { agent: string; proxy: string } => ({
  agent: join(tree, 'packages/metadata-agent/dist/src/cli.js'),
  proxy: join(tree, 'packages/ns-metadata-proxy/dist/src/cli.js'),
});
for (const f of Object.values(cliOf(base)))
  if (!existsSync(f)) throw new Error(`${f} is missing (not built?)`);
const rounds = Number(values.rounds);
const durationS = Number(values.duration);
const connections = values.connections.split(',').map(Number);
const log = (m: string): void => {
  process.stderr.write(`${m}\n`);
};
const logLevel = values['log-level'];
const path = values.path;

type Side = 'A' | 'B';
interface Cell {
  rps: number;
  p50: number | null;
  proxy: number;
  agent: number;
  bad: number;
}

const dir = resultsDir(`ab-${stamp()}`);
const sides: Partial<Record<Side, BenchChain>> = {};
const side = (s: Side): BenchChain => {
  const chain = sides[s];
  if (!chain) throw new Error(`side ${s} was not started`);
  return chain;
};
try {
  for (const [name, cli] of [
    ['A', cliOf(base)],
    ['B', undefined],
  ] as const) {
    const logDir = join(dir, name);
    mkdirSync(logDir, { recursive: true });
    sides[name] = await startChain({ logDir, logLevel, ...(cli ? { cli } : {}) });
  }
  const url = (s: Side): string => `${side(s).proxyUrl}${path}`;
  for (const s of ['A', 'B'] as const)
    await runLoad({ url: url(s), connections: 10, durationS: 2, tool: 'wrk' });
  const cells: Record<string, Cell[]> = {};
  for (let round = 1; round <= rounds; round++) {
    for (const c of connections)
      for (const s of round % 2 === 1 ? (['A', 'B'] as const) : (['B', 'A'] as const)) {
        await waitForQuiet(Number(values['quiet-wait']));
        const procs = [side(s).proxy!, side(s).agent];
        const before = procs.map((p) => cpuTimesOf(p.pid));
        const r = await runLoad({ url: url(s), connections: c, durationS, tool: 'wrk' });
        const after = procs.map((p) => cpuTimesOf(p.pid));
        const n = Math.max(1, r.ok + r.non2xx);
        const us = procs.map(
          (_, i) => ((after[i]!.user + after[i]!.sys - before[i]!.user - before[i]!.sys) / n) * 1e6,
        );
        const list = cells[`${s}|${c}`] ?? [];
        cells[`${s}|${c}`] = list;
        list.push({
          rps: r.rps,
          p50: r.p50,
          proxy: us[0]!,
          agent: us[1]!,
          bad: r.non2xx + r.errors + r.mismatches,
        });
        log(
          `  round ${round} ${s} c=${c}: ${fmt.int(r.rps)} req/s, proxy ${fmt.int(us[0])} µs, agent ${fmt.int(us[1])} µs`,
        );
      }
  }
  const rows: (string | number)[][] = [];
  for (const c of connections) {
    const a = cells[`A|${c}`] ?? [];
    const b = cells[`B|${c}`] ?? [];
    type Figure = 'rps' | 'p50' | 'proxy' | 'agent';
    const ratio = (k: Figure): number => pairedRatio(b.map((x, i) => Number(x[k]) / Number(a[i]?.[k])));
    const med = (xs: Cell[], k: Figure): number => median(xs.map((x) => x[k]));
    rows.push([
      c,
      fmt.int(med(a, 'proxy')),
      fmt.int(med(b, 'proxy')),
      fmt.ratio(ratio('proxy')),
      fmt.int(med(a, 'agent')),
      fmt.int(med(b, 'agent')),
      fmt.ratio(ratio('agent')),
      fmt.ratio(ratio('rps')),
      fmt.ratio(ratio('p50')),
    ]);
  }
  const mem = Object.fromEntries(
    (['A', 'B'] as const).flatMap((s) =>
      (['proxy', 'agent'] as const).map((p) => [`${s} ${p}`, fmt.mb(memoryOf(side(s)[p]!.pid).rssKb)]),
    ),
  );
  process.stdout.write(
    `${textTable(['conns', 'A proxy µs', 'B proxy µs', 'B/A', 'A agent µs', 'B agent µs', 'B/A', 'req/s B/A', 'p50 B/A'], rows)}\nRSS after load MB: ${JSON.stringify(mem)}\n`,
  );
} finally {
  for (const s of Object.values(sides)) await s.stop();
}
process.exit(0);
