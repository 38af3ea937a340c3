// One load run, in a process of its own so that the load generator never shares an event loop with what it
// measures. Argument: a JSON spec {url, connections, durationS, headers?, expectBody?, timeoutS?, tool?}.
// tool: 'autocannon' (from npm, always there) or 'wrk' (Debian's; about a third of autocannon's CPU per
// request, which on a 2-core machine is CPU the measured processes get). Prints one JSON line: requests/s,
// latency percentiles in ms (microsecond resolution), errors, and the CPU time the generator used.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import autocannon from 'autocannon';
import type { LoadResult, LoadSpec } from './lib.js';

const given = JSON.parse(process.argv[2] ?? '{}') as Partial<LoadSpec>;
if (!given.url || !given.connections || !given.durationS) {
  process.stderr.write('usage: load-worker.js \'{"url":...,"connections":N,"durationS":S}\'\n');
  process.exit(2);
}
const spec = given as LoadSpec;
if (spec.tool === 'wrk') {
  runWrk(spec);
  process.exit(0);
}

const latencies: number[] = [];
let ok = 0;
let non2xx = 0;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();

const instance = autocannon(
  {
    url: spec.url,
    connections: spec.connections,
    duration: spec.durationS,
    pipelining: 1,
    timeout: spec.timeoutS ?? 10,
    headers: spec.headers ?? {},
    ...(spec.expectBody !== undefined ? { expectBody: spec.expectBody } : {}),
  },
  (err, result) => {
    const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
    if (err) {
      process.stderr.write(`autocannon: ${err.stack ?? String(err)}\n`);
      process.exit(1);
    }
    const cpu = process.cpuUsage(cpu0);
    const sorted = Float64Array.from(latencies).sort();
    const pct = (p: number): number | null =>
      sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    let sum = 0;
    for (const v of sorted) sum += v;
    const out: LoadResult = {
      url: spec.url,
      connections: spec.connections,
      tool: 'autocannon',
      durationS: result.duration,
      elapsedS,
      ok,
      non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      mismatches: result.mismatches ?? 0,
      resets: result.resets ?? 0,
      rps: ok / result.duration,
      p50: pct(0.5),
      p90: pct(0.9),
      p99: pct(0.99),
      max: sorted.length ? sorted[sorted.length - 1]! : null,
      mean: sorted.length ? sum / sorted.length : null,
      loadgenCpuS: (cpu.user + cpu.system) / 1e6,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  },
);

instance.on('response', (_client, statusCode, _bytes, responseTime) => {
  if (statusCode >= 200 && statusCode < 300) {
    ok++;
    latencies.push(responseTime);
  } else {
    non2xx++;
  }
});

/**
 * wrk with one thread (the chain has the other core's worth of work to do), a Lua script that checks
 * every answer (status 200 and, if given, the exact body) and prints the summary as JSON.
 */
function runWrk(spec: LoadSpec): void {
  const script = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
local expected = os.getenv("NMP_EXPECT_BODY")
function init(args) ok = 0; non2xx = 0; mismatches = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1
  elseif expected ~= nil and body ~= expected then mismatches = mismatches + 1
  else ok = ok + 1 end
end
function done(summary, latency, requests)
  local o, n, m = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); n = n + t:get("non2xx"); m = m + t:get("mismatches") end
  local e = summary.errors
  io.write(string.format('\\nWRKJSON {"ok":%d,"non2xx":%d,"mismatches":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.3f}\\n',
    o, n, m, summary.duration, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
`;
  const scriptFile = `/tmp/nmp-bench-wrk-${process.pid}.lua`;
  writeFileSync(scriptFile, script);
  const args = [
    '-t1',
    `-c${spec.connections}`,
    `-d${spec.durationS}s`,
    `--timeout`,
    `${spec.timeoutS ?? 10}s`,
  ];
  for (const [k, v] of Object.entries(spec.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push('-s', scriptFile, spec.url);
  const t0 = process.hrtime.bigint();
  const r = spawnSync('wrk', args, {
    encoding: 'utf8',
    env: { ...process.env, ...(spec.expectBody !== undefined ? { NMP_EXPECT_BODY: spec.expectBody } : {}) },
    timeout: (spec.durationS + 20) * 1000,
  });
  const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(scriptFile, { force: true });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('WRKJSON '));
  if (r.status !== 0 || line === undefined) {
    process.stderr.write(
      `wrk failed (${r.error?.message ?? r.signal ?? r.status}):\n${r.stderr}${r.stdout}\n`,
    );
    process.exit(1);
  }
  const w = JSON.parse(line.slice('WRKJSON '.length)) as WrkSummary;
  // wrk has been waited for: its CPU time is in this process's cutime/cstime (fields 16 and 17).
  const stat = (readFileSync('/proc/self/stat', 'utf8').split(') ')[1] ?? '').split(' ');
  const childCpuS = (Number(stat[13]) + Number(stat[14])) / 100;
  const durationS = w.durationUs / 1e6;
  const out: LoadResult = {
    url: spec.url,
    connections: spec.connections,
    tool: 'wrk',
    durationS,
    elapsedS,
    ok: w.ok,
    non2xx: w.non2xx,
    errors: w.connect + w.read + w.write,
    timeouts: w.timeout,
    mismatches: w.mismatches,
    resets: 0,
    rps: w.ok / durationS,
    p50: w.p50 / 1000,
    p90: w.p90 / 1000,
    p99: w.p99 / 1000,
    max: w.max / 1000,
    mean: w.mean / 1000,
    loadgenCpuS: childCpuS,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** The JSON line the Lua script above prints (wrk's figures: microseconds). */
interface WrkSummary {
  ok: number;
  non2xx: number;
  mismatches: number;
  durationUs: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}
