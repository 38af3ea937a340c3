// The report of `npm run bench -- --compare-bare` (issue 22): ours against a bare Node chain measured in the
// same run, round by round (bare/). What counts on a shared machine are the ratios of the same
// round and CPU µs per request per process, not absolute req/s. The section is written between its own
// markers in docs/benchmarks.md; the rest of the file is left as it is, and a hand-written analysis inside
// the section (between its own markers) is kept across runs.
import { readFileSync, writeFileSync } from 'node:fs';
import { fmt, mdTable, median, pairedRatio, textTable } from './index.js';
import type { BenchResults, Cell, CellRun, RunContext } from './run-results.js';

/** The options of `npm run bench` that the comparison reads. */
export interface CompareBareOptions {
  readonly paths: readonly string[];
  readonly connections: readonly number[];
  readonly logLevel: string;
  readonly nodeArgs: readonly string[];
  readonly loadTool?: string;
  readonly runs: number;
  readonly durationS: number;
  readonly warmupS: number;
}

export const TARGETS_22 = {
  /** proxy CPU per request <= the bare proxy's */
  proxyCpu: 1.0,
  /** agent CPU per request <= the bare agent's + 10% */
  agentCpu: 1.1,
  /** chain req/s at 50 connections >= the bare chain's */
  rps50: 1.0,
  /** p50 at one connection <= the bare chain's */
  p50One: 1.0,
  proxyRssMb: 70,
  agentRssMb: 100,
};

const SECTION = 'bare-chain';
const ANALYSIS = 'bare-chain-analysis';

/** A round's run, or nothing when the other side has fewer rounds (its ratios are then NaN). */
type MaybeRun = Partial<CellRun>;

/** Per round, ours ÷ bare of `f(run)`; those ratios paired by order (pairedRatio). */
function roundRatio(ours: Cell, bare: Cell, f: (r: MaybeRun) => unknown): number {
  return pairedRatio(ours.runs.map((r, i) => Number(f(r)) / Number(f(bare.runs[i] ?? {}))));
}

const cpuPerReq =
  (name: string) =>
  (r: MaybeRun): number =>
    (Number(r.cpuS?.[name]) / Math.max(1, Number(r.ok) + Number(r.non2xx))) * 1e6;

/** Ours and bare of one cell, with the same-round ratios. */
export interface Comparison {
  readonly path: string;
  readonly connections: number;
  readonly ours: Cell;
  readonly bare: Cell;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly rounds: number;
  readonly proxyCpu: number;
  readonly agentCpu: number;
}

/** A table: header and rows. */
interface Table {
  header: string[];
  rows: (string | number)[][];
}

/** Ours and bare of each cell, with the same-round ratios. */
export function comparisons(opts: CompareBareOptions, results: BenchResults): Comparison[] {
  const out: Comparison[] = [];
  for (const path of opts.paths)
    for (const c of opts.connections) {
      const ours = results.cells[`chain|${path}|${c}`];
      const bare = results.cells[`bare|${path}|${c}`];
      if (!ours || !bare) continue;
      out.push({
        path,
        connections: c,
        ours,
        bare,
        rps: roundRatio(ours, bare, (r) => r.rps),
        p50: roundRatio(ours, bare, (r) => r.p50),
        p99: roundRatio(ours, bare, (r) => r.p99),
        rounds: ours.runs.length,
        // CPU: our proxy against the bare proxy of the same round (they are different processes).
        proxyCpu: pairedRatio(
          ours.runs.map((r, i) => cpuPerReq('proxy')(r) / cpuPerReq('bare-proxy')(bare.runs[i] ?? {})),
        ),
        agentCpu: pairedRatio(
          ours.runs.map((r, i) => cpuPerReq('agent')(r) / cpuPerReq('bare-agent')(bare.runs[i] ?? {})),
        ),
      });
    }
  return out;
}

function throughputTable(rows: Comparison[]): Table {
  return {
    header: [
      'path',
      'conns',
      'ours req/s',
      'p50 ms',
      'p99 ms',
      'bare req/s',
      'p50 ms',
      'p99 ms',
      'req/s ours/bare',
      'p50 ours/bare',
      'p99 ours/bare',
    ],
    rows: rows.map((x) => [
      x.path,
      x.connections,
      fmt.int(x.ours.rps),
      fmt.ms(x.ours.p50),
      fmt.ms(x.ours.p99),
      fmt.int(x.bare.rps),
      fmt.ms(x.bare.p50),
      fmt.ms(x.bare.p99),
      fmt.ratio(x.rps),
      fmt.ratio(x.p50),
      fmt.ratio(x.p99),
    ]),
  };
}

function cpuTable(rows: Comparison[]): Table {
  const us = (cell: Cell, k: string): string => fmt.int(cell.cpuUsPerReq[k]);
  return {
    header: [
      'path',
      'conns',
      'proxy µs',
      'bare proxy µs',
      'proxy ours/bare',
      'agent µs',
      'bare agent µs',
      'agent ours/bare',
      'nova µs (ours / bare)',
      'load generator µs (ours / bare)',
    ],
    rows: rows.map((x) => [
      x.path,
      x.connections,
      us(x.ours, 'proxy'),
      us(x.bare, 'bare-proxy'),
      fmt.ratio(x.proxyCpu),
      us(x.ours, 'agent'),
      us(x.bare, 'bare-agent'),
      fmt.ratio(x.agentCpu),
      `${us(x.ours, 'nova')} / ${us(x.bare, 'nova')}`,
      `${fmt.int(x.ours.loadgenUsPerReq)} / ${fmt.int(x.bare.loadgenUsPerReq)}`,
    ]),
  };
}

function memoryTable(memory: BenchResults['memory']): Table {
  const names = ['proxy', 'agent', 'bare-proxy', 'bare-agent'];
  return {
    header: ['process', 'RSS idle MB', 'RSS after load MB', 'of which anon / file MB', 'peak RSS MB'],
    rows: names
      .filter((n) => memory.afterLoad?.[n])
      .map((n) => {
        const m = memory.afterLoad![n]!;
        return [
          n,
          fmt.mb(memory.idle?.[n]?.rssKb),
          fmt.mb(m.rssKb),
          `${fmt.mb(m.anonKb)} / ${fmt.mb(m.fileKb)}`,
          fmt.mb(m.hwmKb),
        ];
      }),
  };
}

/** The targets of issue 22 against this run. */
export interface Target {
  readonly name: string;
  readonly goal: string;
  readonly value: string;
  readonly met: boolean;
}

export function compareBareTargets(opts: CompareBareOptions, results: BenchResults): Target[] {
  const rows = comparisons(opts, results);
  const pick = (c: number): Comparison | undefined =>
    rows.find((x) => x.path === 'instance-id' && x.connections === c);
  const at50 = pick(50);
  const at1 = pick(1);
  const standard = opts.logLevel === 'info' && opts.nodeArgs.length === 0;
  const out: Target[] = [];
  const add = (name: string, goal: string, value: string, met: boolean): number =>
    out.push({ name: standard ? name : `${name} [experiment]`, goal, value, met: met && standard });
  for (const x of [at1, at50].filter((c) => c !== undefined)) {
    add(
      `proxy CPU per request, ${x.connections} connection(s), ours ÷ bare`,
      `<= ${TARGETS_22.proxyCpu.toFixed(2)}`,
      fmt.ratio(x.proxyCpu),
      x.proxyCpu <= TARGETS_22.proxyCpu,
    );
    add(
      `agent CPU per request, ${x.connections} connection(s), ours ÷ bare`,
      `<= ${TARGETS_22.agentCpu.toFixed(2)}`,
      fmt.ratio(x.agentCpu),
      x.agentCpu <= TARGETS_22.agentCpu,
    );
  }
  if (at50)
    add(
      'chain req/s at 50 connections, ours ÷ bare',
      `>= ${TARGETS_22.rps50.toFixed(2)}`,
      fmt.ratio(at50.rps),
      at50.rps >= TARGETS_22.rps50,
    );
  if (at1)
    add(
      'p50 at one connection, ours ÷ bare',
      `<= ${TARGETS_22.p50One.toFixed(2)}`,
      fmt.ratio(at1.p50),
      at1.p50 <= TARGETS_22.p50One,
    );
  const mem = results.memory.afterLoad ?? {};
  if (mem.proxy)
    add(
      'proxy RSS after the load',
      `<= ${TARGETS_22.proxyRssMb} MB`,
      `${fmt.mb(mem.proxy.rssKb)} MB`,
      Number(mem.proxy.rssKb) / 1024 <= TARGETS_22.proxyRssMb,
    );
  if (mem.agent)
    add(
      'agent RSS after the load',
      `<= ${TARGETS_22.agentRssMb} MB`,
      `${fmt.mb(mem.agent.rssKb)} MB`,
      Number(mem.agent.rssKb) / 1024 <= TARGETS_22.agentRssMb,
    );
  return out;
}

/** Plain-text tables for the terminal. */
export function printCompareBare(opts: CompareBareOptions, results: BenchResults): string {
  const rows = comparisons(opts, results);
  const t = throughputTable(rows);
  const c = cpuTable(rows);
  const m = memoryTable(results.memory);
  const targets = compareBareTargets(opts, results);
  return [
    'Ours against the bare chain (medians over the rounds; ratios: the same-round ratios, each pair of rounds (one of each order) its geometric mean, the median of those):',
    textTable(t.header, t.rows),
    '',
    'CPU per request (user + system, /proc/<pid>/stat):',
    textTable(c.header, c.rows),
    '',
    textTable(m.header, m.rows),
    '',
    textTable(
      ['target (issue 22)', 'goal', 'measured', 'met'],
      targets.map((x) => [x.name, x.goal, x.value, x.met ? 'yes' : 'NO']),
    ),
    '',
  ].join('\n');
}

function keptAnalysis(old: string): string {
  const start = old.indexOf(`<!-- ${ANALYSIS}:start`);
  const end = old.indexOf(`<!-- ${ANALYSIS}:end -->`);
  if (start < 0 || end < start) return '_No analysis written yet._';
  return old.slice(old.indexOf('-->', start) + 3, end).trim();
}

/** The section, markers included. */
export function compareBareReport(opts: CompareBareOptions, ctx: RunContext, old = ''): string {
  const { machine, results, command, date, elapsedS } = ctx;
  const rows = comparisons(opts, results);
  const t = throughputTable(rows);
  const c = cpuTable(rows);
  const m = memoryTable(results.memory);
  const targets = compareBareTargets(opts, results);
  const all = Object.values(results.cells).flatMap((cell) => cell.runs);
  const loads = all.map((r) => r.loadavg).filter(Number.isFinite);
  const others = all.map((r) => r.otherCpuShare).filter(Number.isFinite);
  const lines = [
    `<!-- ${SECTION}:start (written by npm run bench -- --compare-bare) -->`,
    '## Ours against a bare Node chain (issue 22)',
    '',
    `- Command: \`${command}\``,
    `- Date: ${date}${Number.isFinite(elapsedS) ? ` (took ${Math.round(elapsedS)} s)` : ''}`,
    `- Machine: ${machine.nproc} cores (${machine.model}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}. Shared: load average (1 min) during the cells ${loads.length ? `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)} (median ${median(loads).toFixed(2)})` : 'n/a'}; other processes used a median ${Math.round(median(others) * 100)}% of a core (at most ${Math.round(Math.max(0, ...others) * 100)}%) while the cells ran.`,
    `- Ours: ns-metadata-proxy -> UNIX socket -> metadata-agent (inventory resolver, info logging to a file, metrics on) -> nova-metadata-dev. Bare: packages/bench/src/bare/proxy.ts (node:http server, the client's headers plus X-Forwarded-For and the network id, forwarded over an undici Pool on a UNIX socket, the answer piped back) -> packages/bench/src/bare/agent.ts (the port from an in-memory map of the same inventory, HMAC-SHA256 signature, forwarded to the same Nova process over an undici Pool) — no header policy, limits, timers, logging or metrics. Both with the services' node flags; ${opts.loadTool ?? 'wrk'} in its own process, keep-alive.`,
    `- ${rows[0]?.rounds ?? opts.runs} rounds of ${opts.durationS} s per cell after a ${opts.warmupS} s warm-up; within a round ours and bare run one after the other (every other round bare first). Medians over the rounds. A ratio is taken round by round, each pair of rounds (one of each order) gives the geometric mean of its two, and the figure is the median of those (an odd last round is left out), so that whatever favours the side that runs second cancels.`,
    '',
    mdTable(
      t.header,
      t.rows.map((r) => r.map(String)),
    ),
    '',
    '### CPU per request, per process',
    '',
    mdTable(
      c.header,
      c.rows.map((r) => r.map(String)),
    ),
    '',
    'CPU time (user + system, from /proc/<pid>/stat) each process used during a cell, divided by the requests answered. Nova is the same process for both chains: its column is a check that both ask it the same work.',
    '',
    '### Memory',
    '',
    mdTable(
      m.header,
      m.rows.map((r) => r.map(String)),
    ),
    '',
    '### Targets (issue 22)',
    '',
    mdTable(
      ['target', 'goal', 'measured', 'met'],
      targets.map((x) => [x.name, x.goal, x.value, x.met ? 'yes' : '**no**']),
      ['l', 'l', 'r', 'l'],
    ),
    '',
    `<!-- ${ANALYSIS}:start (kept by npm run bench -- --compare-bare; edit freely) -->`,
    '',
    keptAnalysis(old),
    '',
    `<!-- ${ANALYSIS}:end -->`,
    `<!-- ${SECTION}:end -->`,
  ];
  const failures = Object.values(results.cells).reduce((n, cell) => n + (cell.failures ?? 0), 0);
  if (failures > 0)
    lines.splice(
      lines.indexOf('### CPU per request, per process'),
      0,
      `**${failures} failed or wrong answers** (see bench-results/).`,
      '',
    );
  return lines.join('\n');
}

/** Put the section into `file`: in place of its last version, else at the end. Nothing else changes. */
export function writeCompareBareSection(file: string, opts: CompareBareOptions, ctx: RunContext): void {
  let old = '';
  try {
    old = readFileSync(file, 'utf8');
  } catch {
    // a new file
  }
  const section = compareBareReport(opts, ctx, old);
  const start = old.indexOf(`<!-- ${SECTION}:start`);
  const endMark = `<!-- ${SECTION}:end -->`;
  const end = old.indexOf(endMark);
  const next =
    start >= 0 && end > start
      ? old.slice(0, start) + section + old.slice(end + endMark.length)
      : `${old.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
}
