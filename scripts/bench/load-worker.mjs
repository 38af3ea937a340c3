// One load run with autocannon, in a process of its own so that the load generator never shares an event
// loop with what it measures. Argument: a JSON spec {url, connections, durationS, headers?, expectBody?,
// timeoutS?}. Prints one JSON line: requests/s, latency percentiles in ms (microsecond resolution, from
// autocannon's per-response timings: its own histogram only keeps whole milliseconds), errors, and the
// CPU time this generator used.
import autocannon from 'autocannon';

const spec = JSON.parse(process.argv[2] ?? '{}');
if (!spec.url || !spec.connections || !spec.durationS) {
  process.stderr.write('usage: load-worker.mjs \'{"url":...,"connections":N,"durationS":S}\'\n');
  process.exit(2);
}

const latencies = [];
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
      process.stderr.write(`autocannon: ${err.stack ?? err}\n`);
      process.exit(1);
    }
    const cpu = process.cpuUsage(cpu0);
    const sorted = Float64Array.from(latencies).sort();
    const pct = (p) =>
      sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    let sum = 0;
    for (const v of sorted) sum += v;
    const out = {
      url: spec.url,
      connections: spec.connections,
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
      max: sorted.length ? sorted[sorted.length - 1] : null,
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
