#!/usr/bin/env node
// Summarise a V8 .cpuprofile (node --cpu-prof): self time by function and by file/package, inclusive time
// of our own functions, as Markdown; optionally folded stacks (flamegraph.pl / speedscope input) and a
// plain SVG flame graph.
//
//   node packages/bench/dist/src/cpuprofile-summary.js FILE.cpuprofile [--top N] [--md OUT.md] [--folded OUT] [--svg OUT]
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** The source tree (from packages/bench/dist/src/), with a trailing slash: paths under it become relative. */
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** A call frame of a V8 .cpuprofile (the fields read here). */
export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

export interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

/** A V8 .cpuprofile (node --cpu-prof), the fields read here. */
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export type FrameOrigin =
  | { readonly kind: 'v8' | 'node' | 'ours'; readonly where: string }
  | { readonly kind: 'dependency'; readonly where: string; readonly file: string };

/** Where a frame comes from: ours (packages/...), a dependency, node itself, or V8's pseudo-frames. */
export function classify(url: string | undefined): FrameOrigin {
  if (!url) return { kind: 'v8', where: '(v8)' };
  let u = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (u.startsWith('node:') || !u.startsWith('/')) return { kind: 'node', where: u };
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + '/node_modules/'.length).split('/');
    const first = rest[0] ?? '';
    const pkg = first.startsWith('@') ? `${first}/${rest[1]}` : first;
    // Our workspace packages are linked into node_modules/@nmp.
    if (!pkg.startsWith('@nmp/')) return { kind: 'dependency', where: pkg, file: rest.join('/') };
  }
  if (u.startsWith(ROOT)) u = u.slice(ROOT.length);
  return { kind: 'ours', where: u };
}

/** Frames without a script: V8's bookkeeping, regular expressions, or C++ (bindings, system calls). */
function pseudoKind(name: string): string {
  if (name === '(garbage collector)') return 'gc';
  if (name === '(program)' || name === '(idle)' || name === '(root)') return name.slice(1, -1);
  if (name.startsWith('RegExp:')) return 'regexp';
  return 'native';
}

function frameName(cf: CallFrame): string {
  const fn = cf.functionName || '(anonymous)';
  if (!cf.url) return fn;
  const c = classify(cf.url);
  const file = c.kind === 'dependency' ? `${c.where}:${c.file}` : c.where;
  return `${fn} ${file}:${cf.lineNumber + 1}`;
}

/** Rows of [key, milliseconds], largest first. */
export type Ranked = [string, number][];

export interface ProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly samples: number;
  readonly topFunctions: Ranked;
  readonly topFiles: Ranked;
  readonly kinds: Ranked;
  readonly topOursInclusive: Ranked;
  readonly topOursSelf: Ranked;
  /** Folded stacks (root;...;leaf) -> self milliseconds. */
  readonly folded: Map<string, number>;
}

export function summariseProfile(profile: CpuProfile, { top = 25 }: { top?: number } = {}): ProfileSummary {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const node = (id: number): ProfileNode => {
    const n = nodes.get(id);
    if (!n) throw new Error(`cpuprofile: sample names node ${id}, which the profile does not have`);
    return n;
  };

  // Self time per node: each sample lasts until the next one (V8's timeDeltas are gaps before a sample).
  const self = new Map<number, number>();
  const { samples, timeDeltas } = profile;
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    const dt = ((i + 1 < timeDeltas.length ? timeDeltas[i + 1] : timeDeltas[i]) ?? Number.NaN) / 1000; // ms
    if (!(dt >= 0)) continue;
    const id = samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  }

  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const byKind = new Map<string, number>();
  const inclusiveOurs = new Map<string, number>();
  const folded = new Map<string, number>();
  let idle = 0;
  for (const [id, ms] of self) {
    const cf = node(id).callFrame;
    const name = frameName(cf);
    if (cf.functionName === '(idle)') idle += ms;
    const c = classify(cf.url);
    const kind = cf.url ? c.kind : pseudoKind(cf.functionName);
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    const fileKey = cf.url ? c.where : `(${kind}) ${cf.functionName || 'anonymous'}`;
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + ms);
    byKind.set(kind, (byKind.get(kind) ?? 0) + ms);
    // Walk to the root once: inclusive time of our functions (each counted once per stack) and the stack.
    const stack: string[] = [];
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = node(cur).callFrame;
      if (f.functionName === '(root)') break;
      const nm = frameName(f);
      stack.push(nm);
      if (f.url && classify(f.url).kind === 'ours' && !seen.has(nm)) {
        seen.add(nm);
        inclusiveOurs.set(nm, (inclusiveOurs.get(nm) ?? 0) + ms);
      }
    }
    const key = stack.reverse().join(';');
    folded.set(key, (folded.get(key) ?? 0) + ms);
  }
  const busy = total - idle;
  const sorted = (m: Map<string, number>): Ranked => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    totalMs: total,
    idleMs: idle,
    busyMs: busy,
    samples: samples.length,
    topFunctions: sorted(byFunction)
      .filter(([k]) => !k.startsWith('(idle)'))
      .slice(0, top),
    topFiles: sorted(byFile)
      .filter(([k]) => k !== '(idle) (idle)')
      .slice(0, top),
    kinds: sorted(byKind).filter(([k]) => k !== 'idle'),
    topOursInclusive: sorted(inclusiveOurs).slice(0, top),
    topOursSelf: sorted(byFunction)
      .filter(([k]) => / packages\//.test(k))
      .slice(0, top),
    folded,
  };
}

const pct = (ms: number, of: number): string => `${((100 * ms) / of).toFixed(1)}%`;
const msf = (ms: number): string => ms.toFixed(0);
const esc = (s: string): string => s.replaceAll('|', '\\|');

export function profileMarkdown(
  s: ProfileSummary,
  { title, context }: { title: string; context?: string },
): string {
  const L: string[] = [];
  L.push(`# ${title}`, '');
  if (context) L.push(context, '');
  L.push(
    `Sampled ${(s.totalMs / 1000).toFixed(1)} s, of which ${(s.busyMs / 1000).toFixed(1)} s busy (${pct(s.busyMs, s.totalMs)}); percentages below are of the busy time. Generated by packages/bench/src/cpuprofile-summary.ts.`,
    '',
  );
  L.push(
    "Kinds: ours = packages/*, dependency = node_modules, node = node's JavaScript, native = C++ bindings (for",
    '`writev`, `writeString`, `writeLatin1String` this is mostly the write system call itself: node writes',
    "synchronously when the socket or file accepts it, so the kernel's loopback TCP work is counted there), gc,",
    'program = V8 outside JavaScript.',
    '',
    '## Busy time by kind',
    '',
    '| kind | ms | % |',
    '| --- | ---: | ---: |',
  );
  for (const [k, ms] of s.kinds) L.push(`| ${k} | ${msf(ms)} | ${pct(ms, s.busyMs)} |`);
  L.push(
    '',
    '## Top functions by self time',
    '',
    '| function (file:line) | self ms | % |',
    '| --- | ---: | ---: |',
  );
  for (const [k, ms] of s.topFunctions) L.push(`| \`${esc(k)}\` | ${msf(ms)} | ${pct(ms, s.busyMs)} |`);
  L.push(
    '',
    '## Self time by file or package',
    '',
    '| file / package | self ms | % |',
    '| --- | ---: | ---: |',
  );
  for (const [k, ms] of s.topFiles) L.push(`| \`${esc(k)}\` | ${msf(ms)} | ${pct(ms, s.busyMs)} |`);
  L.push(
    '',
    '## Our functions by self time',
    '',
    '| function (file:line) | self ms | % |',
    '| --- | ---: | ---: |',
  );
  for (const [k, ms] of s.topOursSelf) L.push(`| \`${esc(k)}\` | ${msf(ms)} | ${pct(ms, s.busyMs)} |`);
  L.push(
    '',
    '## Our functions by inclusive time (self + callees)',
    '',
    '| function (file:line) | total ms | % |',
    '| --- | ---: | ---: |',
  );
  for (const [k, ms] of s.topOursInclusive) L.push(`| \`${esc(k)}\` | ${msf(ms)} | ${pct(ms, s.busyMs)} |`);
  L.push('');
  return L.join('\n');
}

export function foldedText(s: ProfileSummary): string {
  return [...s.folded.entries()]
    .filter(([k]) => !k.endsWith('(idle)'))
    .map(([k, ms]) => `${k.replaceAll(' ', '_')} ${Math.max(1, Math.round(ms * 1000))}`)
    .join('\n');
}

interface FlameNode {
  readonly name: string;
  ms: number;
  readonly children: Map<string, FlameNode>;
}

/** A static SVG flame graph (widths = busy time; hover shows the frame and its share). */
export function flameSvg(s: ProfileSummary, title: string): string {
  const root: FlameNode = { name: 'all', ms: 0, children: new Map() };
  for (const [k, ms] of s.folded) {
    if (k.endsWith('(idle)')) continue;
    root.ms += ms;
    let node = root;
    for (const f of k.split(';')) {
      let c = node.children.get(f);
      if (!c) {
        c = { name: f, ms: 0, children: new Map() };
        node.children.set(f, c);
      }
      c.ms += ms;
      node = c;
    }
  }
  const W = 1200;
  const H = 16;
  const rects: { node: FlameNode; x: number; w: number; depth: number }[] = [];
  let depthMax = 0;
  const walk = (node: FlameNode, x: number, depth: number): void => {
    const w = (node.ms / root.ms) * W;
    if (w < 0.3) return;
    depthMax = Math.max(depthMax, depth);
    rects.push({ node, x, w, depth });
    let cx = x;
    for (const c of [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      walk(c, cx, depth + 1);
      cx += (c.ms / root.ms) * W;
    }
  };
  walk(root, 0, 0);
  const height = (depthMax + 2) * H + 24;
  const xml = (t: string): string =>
    t.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
  const color = (name: string): string => {
    if (/ packages\//.test(name)) return '#e8743b';
    if (/ node:/.test(name)) return '#f2c14e';
    if (/ [a-z@][^ ]*:[^ ]*\.js:/.test(name) && !/ packages\//.test(name)) return '#9bc53d';
    return '#c5c5c5';
  };
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="monospace" font-size="11">`,
    `<text x="4" y="14">${xml(title)} (orange: ours, yellow: node, green: dependencies)</text>`,
  ];
  for (const r of rects) {
    const y = height - (r.depth + 1) * H;
    const label = r.w > 40 ? xml(r.node.name.slice(0, Math.floor(r.w / 6.6))) : '';
    out.push(
      `<g><title>${xml(r.node.name)} ${((100 * r.node.ms) / root.ms).toFixed(1)}%</title><rect x="${r.x.toFixed(1)}" y="${y}" width="${r.w.toFixed(1)}" height="${H - 1}" fill="${color(r.node.name)}"/><text x="${(r.x + 2).toFixed(1)}" y="${y + 11}">${label}</text></g>`,
    );
  }
  out.push('</svg>');
  return out.join('\n');
}

export interface SummariseFileOptions {
  top?: number;
  title?: string | undefined;
  context?: string | undefined;
  foldedFile?: string | undefined;
  svgFile?: string | undefined;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** The parsed JSON of a .cpuprofile, checked for the arrays read here (the nodes' fields are V8's). */
function asCpuProfile(v: unknown, file: string): CpuProfile {
  if (
    !isRecord(v) ||
    !Array.isArray(v.nodes) ||
    !Array.isArray(v.samples) ||
    !Array.isArray(v.timeDeltas) ||
    !v.nodes.every((n) => isRecord(n) && typeof n.id === 'number' && isRecord(n.callFrame))
  ) {
    throw new Error(`${file}: not a V8 .cpuprofile (nodes, samples, timeDeltas)`);
  }
  return v as unknown as CpuProfile;
}

/** Read, summarise, write folded stacks and SVG when asked; returns {summary, markdown}. */
export function summariseProfileFile(
  file: string,
  { top = 25, title, context, foldedFile, svgFile }: SummariseFileOptions = {},
): { summary: ProfileSummary; markdown: string } {
  const profile = asCpuProfile(JSON.parse(readFileSync(file, 'utf8')) as unknown, file);
  const summary = summariseProfile(profile, { top });
  const t = title ?? basename(file);
  if (foldedFile) writeFileSync(foldedFile, foldedText(summary));
  if (svgFile) writeFileSync(svgFile, flameSvg(summary, t));
  return {
    summary,
    markdown: profileMarkdown(summary, context === undefined ? { title: t } : { title: t, context }),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '25' },
      md: { type: 'string' },
      folded: { type: 'string' },
      svg: { type: 'string' },
      title: { type: 'string' },
    },
  });
  const file = positionals[0];
  if (positionals.length !== 1 || file === undefined) {
    process.stderr.write(
      'usage: cpuprofile-summary.js FILE.cpuprofile [--top N] [--md OUT] [--folded OUT] [--svg OUT]\n',
    );
    process.exit(2);
  }
  const { markdown } = summariseProfileFile(file, {
    top: Number(values.top),
    title: values.title,
    foldedFile: values.folded,
    svgFile: values.svg,
  });
  if (values.md) writeFileSync(values.md, markdown);
  else process.stdout.write(markdown);
}
