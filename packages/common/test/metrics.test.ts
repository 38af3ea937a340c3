/*
 * The Prometheus registry: the exact exposition text (escaping, number formats, cumulative buckets, order),
 * series created once and reused, scrape-time collect and value, refusals, and the process metrics.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addProcessMetrics, PROMETHEUS_CONTENT_TYPE, Registry } from '../src/metrics.js';

/** Value of the first sample named `name` with exactly these labels (in any order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((p) => [p[1], p[2]]),
    );
    if (JSON.stringify(Object.entries(have).sort()) === JSON.stringify(Object.entries(labels).sort()))
      return Number(m[3]);
  }
  return undefined;
}

test('the exposition of a small registry, byte for byte', async () => {
  const r = new Registry();
  const requests = r.counter({
    name: 'demo_requests_total',
    help: 'Requests by path\\kind\nsecond line',
    labelNames: ['path', 'kind'],
  });
  requests.labels('/a', 'ok').inc();
  requests.labels('/a', 'ok').inc(2);
  requests.zero('/b"\\\nc', 'err');
  let open = 5;
  r.gauge({ name: 'demo_open', help: 'Open things', value: () => open });
  let collected = 0;
  const sides = r.gauge({
    name: 'demo_side',
    help: 'By side',
    labelNames: ['side'],
    collect: () => {
      collected++;
      left.set(collected * 1.5);
      right.set(Number.NEGATIVE_INFINITY);
    },
  });
  const left = sides.labels('left');
  const right = sides.labels('right');
  sides.labels('nan').set(Number.NaN);
  const latency = r.histogram({
    name: 'demo_seconds',
    help: 'Latency',
    labelNames: ['mode'],
    buckets: [0.0005, 1, 2.5, 30],
  });
  const network = latency.labels('network');
  for (const v of [0.0005, 0.5, 2, 100, Number.NaN]) network.observe(v);
  latency.zero('router');
  r.histogram({
    name: 'demo_plain_seconds',
    help: 'Plain',
    buckets: [0.1, Number.POSITIVE_INFINITY],
  }).observe(0.05);
  r.counter({ name: 'demo_plain_total', help: 'Never incremented' });
  r.gauge({ name: 'demo_empty', help: 'A labelled gauge without series', labelNames: ['x'] });
  r.gauge({ name: 'demo_absent', help: 'No value this time', value: () => undefined });

  const expected = [
    '# HELP demo_requests_total Requests by path\\\\kind\\nsecond line',
    '# TYPE demo_requests_total counter',
    'demo_requests_total{path="/a",kind="ok"} 3',
    'demo_requests_total{path="/b\\"\\\\\\nc",kind="err"} 0',
    '# HELP demo_open Open things',
    '# TYPE demo_open gauge',
    'demo_open 5',
    '# HELP demo_side By side',
    '# TYPE demo_side gauge',
    'demo_side{side="left"} 1.5',
    'demo_side{side="right"} -Inf',
    'demo_side{side="nan"} NaN',
    '# HELP demo_seconds Latency',
    '# TYPE demo_seconds histogram',
    'demo_seconds_bucket{mode="network",le="0.0005"} 1',
    'demo_seconds_bucket{mode="network",le="1"} 2',
    'demo_seconds_bucket{mode="network",le="2.5"} 3',
    'demo_seconds_bucket{mode="network",le="30"} 3',
    'demo_seconds_bucket{mode="network",le="+Inf"} 4',
    'demo_seconds_sum{mode="network"} 102.5005',
    'demo_seconds_count{mode="network"} 4',
    'demo_seconds_bucket{mode="router",le="0.0005"} 0',
    'demo_seconds_bucket{mode="router",le="1"} 0',
    'demo_seconds_bucket{mode="router",le="2.5"} 0',
    'demo_seconds_bucket{mode="router",le="30"} 0',
    'demo_seconds_bucket{mode="router",le="+Inf"} 0',
    'demo_seconds_sum{mode="router"} 0',
    'demo_seconds_count{mode="router"} 0',
    '# HELP demo_plain_seconds Plain',
    '# TYPE demo_plain_seconds histogram',
    'demo_plain_seconds_bucket{le="0.1"} 1',
    'demo_plain_seconds_bucket{le="+Inf"} 1',
    'demo_plain_seconds_sum 0.05',
    'demo_plain_seconds_count 1',
    '# HELP demo_plain_total Never incremented',
    '# TYPE demo_plain_total counter',
    'demo_plain_total 0',
    '# HELP demo_empty A labelled gauge without series',
    '# TYPE demo_empty gauge',
    '# HELP demo_absent No value this time',
    '# TYPE demo_absent gauge',
    '',
  ].join('\n');
  assert.equal(await r.render(), expected);
  assert.equal(r.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(PROMETHEUS_CONTENT_TYPE, r.contentType);

  // Scrape-time figures are read again on every render; nothing else moves.
  open = 7;
  const again = await r.render();
  assert.equal(sample(again, 'demo_open'), 7);
  assert.equal(sample(again, 'demo_side', { side: 'left' }), 3);
  assert.equal(sample(again, 'demo_requests_total', { path: '/a', kind: 'ok' }), 3);
  assert.equal(collected, 2);
});

test('a series is created once: labels() returns the same one, numbers and strings alike', async () => {
  const r = new Registry();
  const byStatus = r.counter({ name: 'x_total', help: 'x', labelNames: ['status'] });
  const ok = byStatus.labels(200);
  assert.equal(byStatus.labels('200'), ok);
  assert.notEqual(byStatus.labels(404), ok);
  for (let i = 0; i < 1000; i++) ok.inc();
  assert.equal(ok.value, 1000);
  const h = r.histogram({ name: 'y_seconds', help: 'y', labelNames: ['a', 'b'], buckets: [1] });
  const child = h.labels('p', 'q');
  assert.equal(h.labels('p', 'q'), child);
  child.observe(0.5);
  child.observe(3);
  assert.deepEqual([child.count, child.sum], [2, 3.5]);
  const text = await r.render();
  assert.equal(sample(text, 'x_total', { status: '200' }), 1000);
  assert.equal(sample(text, 'x_total', { status: '404' }), 0);
  assert.equal(text.match(/^x_total\{/gm)?.length, 2, 'two series, not three');
  assert.equal(sample(text, 'y_seconds_bucket', { a: 'p', b: 'q', le: '1' }), 1);
  assert.equal(sample(text, 'y_seconds_bucket', { a: 'p', b: 'q', le: '+Inf' }), 2);
});

test('gauges: set, inc, dec, setToCurrentTime', async () => {
  const r = new Registry();
  const g = r.gauge({ name: 'g', help: 'g' });
  g.set(10);
  g.inc();
  g.dec(4);
  assert.equal(g.value, 7);
  const before = Date.now() / 1000;
  g.setToCurrentTime();
  assert.ok(g.value >= before && g.value <= Date.now() / 1000 + 0.001, String(g.value));
  assert.equal(sample(await r.render(), 'g'), g.value);
});

test('collects run before any value is read, and async ones are awaited', async () => {
  const r = new Registry();
  let snapshot = 0;
  let source = 41;
  r.counter({ name: 'first_total', help: 'f', value: () => snapshot });
  r.gauge({
    name: 'later',
    help: 'l',
    collect: () =>
      new Promise<void>((resolve) =>
        setTimeout(() => {
          snapshot = ++source;
          resolve();
        }, 5),
      ),
    value: () => snapshot * 2,
  });
  const text = await r.render();
  assert.equal(sample(text, 'first_total'), 42);
  assert.equal(sample(text, 'later'), 84);
  r.gauge({
    name: 'broken',
    help: 'b',
    collect: () => {
      throw new Error('source gone');
    },
  });
  await assert.rejects(r.render(), /source gone/);
});

test('refusals: bad names, duplicates, label arity, negative increments, bad buckets', () => {
  const r = new Registry();
  const c = r.counter({ name: 'c_total', help: 'c', labelNames: ['a', 'b'] });
  // @ts-expect-error two label values are needed
  assert.throws(() => c.labels('x'), /2 label values expected \(a, b\), got 1/);
  assert.throws(() => c.labels('x', 'y').inc(-1), RangeError);
  assert.throws(() => c.labels('x', 'y').inc(Number.NaN), RangeError);
  assert.equal(c.labels('x', 'y').value, 0);
  assert.throws(() => r.counter({ name: 'c_total', help: 'again' }), /already registered/);
  assert.throws(() => r.gauge({ name: 'bad-name', help: 'x' }), /invalid metric name/);
  assert.throws(() => r.gauge({ name: 'g1', help: 'x', labelNames: ['__reserved'] }), /invalid label name/);
  assert.throws(() => r.gauge({ name: 'g2', help: 'x', labelNames: ['a', 'a'] }), /duplicate label/);
  assert.throws(
    () => r.histogram({ name: 'h1', help: 'x', labelNames: ['le'], buckets: [1] }),
    /invalid label name "le"/,
  );
  assert.throws(() => r.histogram({ name: 'h2', help: 'x', buckets: [1, 1] }), /strictly increasing/);
  assert.throws(() => r.histogram({ name: 'h3', help: 'x', buckets: [2, 1] }), /strictly increasing/);
  assert.throws(() => r.histogram({ name: 'h4', help: 'x', buckets: [] }), /no buckets/);
});

test('process and Node.js metrics: present, typed, plausible, and the event loop lag is measured', async () => {
  const r = new Registry();
  addProcessMetrics(r);
  const text = await r.render();
  for (const [name, type] of [
    ['process_cpu_user_seconds_total', 'counter'],
    ['process_cpu_system_seconds_total', 'counter'],
    ['process_cpu_seconds_total', 'counter'],
    ['process_start_time_seconds', 'gauge'],
    ['process_resident_memory_bytes', 'gauge'],
    ['process_virtual_memory_bytes', 'gauge'],
    ['process_heap_bytes', 'gauge'],
    ['process_open_fds', 'gauge'],
    ['process_max_fds', 'gauge'],
    ['nodejs_eventloop_lag_seconds', 'gauge'],
    ['nodejs_active_handles_total', 'gauge'],
    ['nodejs_active_requests_total', 'gauge'],
    ['nodejs_heap_size_total_bytes', 'gauge'],
    ['nodejs_heap_size_used_bytes', 'gauge'],
    ['nodejs_external_memory_bytes', 'gauge'],
    ['nodejs_heap_space_size_used_bytes', 'gauge'],
    ['nodejs_version_info', 'gauge'],
  ]) {
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
    assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), name);
  }
  const at = (name: string, labels: Record<string, string> = {}) => {
    const v = sample(text, name, labels);
    assert.ok(v !== undefined && Number.isFinite(v), `${name} ${JSON.stringify(labels)}: ${v}`);
    return v;
  };
  const cpu = process.cpuUsage();
  assert.ok(at('process_cpu_user_seconds_total') > 0);
  assert.ok(at('process_cpu_user_seconds_total') <= cpu.user / 1e6);
  assert.ok(
    Math.abs(
      at('process_cpu_seconds_total') -
        at('process_cpu_user_seconds_total') -
        at('process_cpu_system_seconds_total'),
    ) < 1e-9,
  );
  const started = at('process_start_time_seconds');
  assert.ok(Math.abs(started - (Date.now() / 1000 - process.uptime())) <= 1, String(started));
  const rss = at('process_resident_memory_bytes');
  const nodeRss = process.memoryUsage.rss();
  assert.ok(rss > 10e6 && rss < 2 * nodeRss && rss > nodeRss / 2, `${rss} vs ${nodeRss}`);
  assert.ok(at('process_virtual_memory_bytes') >= rss);
  assert.ok(at('process_heap_bytes') > 0);
  const fds = at('process_open_fds');
  assert.ok(fds >= 3 && fds <= at('process_max_fds'), String(fds));
  assert.ok(at('nodejs_heap_size_used_bytes') > 0);
  assert.ok(at('nodejs_heap_size_used_bytes') <= at('nodejs_heap_size_total_bytes'));
  assert.ok(at('nodejs_heap_space_size_total_bytes', { space: 'old' }) > 0);
  assert.ok(at('nodejs_active_handles_total') >= 0);
  const [major, minor, patch] = process.version.slice(1).split('.');
  assert.equal(
    at('nodejs_version_info', { version: process.version, major: major!, minor: minor!, patch: patch! }),
    1,
  );
  const lag = at('nodejs_eventloop_lag_seconds');
  assert.ok(lag >= 0 && lag < 1, String(lag));

  // Work queued before the scrape's setImmediate delays it: a 60 ms busy callback shows as >= 60 ms lag.
  setImmediate(() => {
    const until = performance.now() + 60;
    while (performance.now() < until);
  });
  const busy = sample(await r.render(), 'nodejs_eventloop_lag_seconds');
  assert.ok(busy !== undefined && busy >= 0.059 && busy < 5, String(busy));

  // CPU counters are read at scrape time and grow.
  const until = performance.now() + 30;
  while (performance.now() < until);
  assert.ok(sample(await r.render(), 'process_cpu_seconds_total')! > at('process_cpu_seconds_total'));
});
