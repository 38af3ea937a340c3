/*
 * A small Prometheus registry: counters, gauges and histograms, rendered in the text exposition format
 * 0.0.4. It replaces prom-client, of which we used a small part: loading prom-client and its default
 * metrics cost each process about 5 MB resident, and its observe()/inc() hashed the label set on every
 * call. Scrapers see what prom-client showed them: the same family names, types, help texts, labels,
 * bucket boundaries (`le` printed the same way) and content type.
 *
 *   const registry = new Registry();
 *   const requests = registry.counter({ name, help, labelNames: ['mode', 'status'] });
 *   const ok = requests.labels('network', 200);   // the series, created at 0; look it up once, keep it
 *   ok.inc();                                     // hot path: one addition
 *   registry.gauge({ name, help, value: () => server.connections });   // read when scraped
 *   const latency = registry.histogram({ name, help, buckets: [0.001, 0.01, 0.1, 1] });
 *   latency.observe(0.003);                       // an unlabelled metric is its own (single) series
 *   send(registry.contentType, await registry.render());
 *
 * Series and families
 * - Without labelNames, counter()/gauge()/histogram() return the one series, which exists (at 0) from the
 *   start. With labelNames they return a family: labels(...values) creates a series at 0 the first time
 *   and returns the same one afterwards (a map lookup and a string built: not for the hot path; keep the
 *   series). zero(...values) creates a series without keeping it, so that rate() and alerts see it at 0.
 * - Counter.inc(n = 1) refuses n < 0 and NaN (RangeError). Gauge: set, inc, dec, setToCurrentTime (epoch
 *   seconds). Histogram.observe(v): a linear scan of the bounds and three additions, no allocation, no
 *   strings; NaN is ignored (it would poison _sum forever). Buckets are counted per bound and made
 *   cumulative when rendered.
 *
 * Scrape time
 * - `collect` (any metric) runs when render() is called, for every metric in registration order, before
 *   anything is rendered; it may return a promise, which render() awaits. One collect may set several
 *   metrics (process metrics read /proc once for three gauges).
 * - `value` (unlabelled counter or gauge) is read while rendering, after every collect: for figures kept
 *   elsewhere, such as a cache's hit count (a counter's value must only grow) or connections open.
 *   Returning undefined leaves the family without a sample (HELP and TYPE only), e.g. when /proc is gone.
 *
 * Exposition: families in registration order, series in creation order; `# HELP name text` with backslash
 * and newline escaped, `# TYPE name counter|gauge|histogram`, then `name{a="x",b="y"} value` with label
 * values escaped (backslash, double quote, newline). Numbers as JavaScript prints them (integers without a
 * decimal point, 0.0005, 1e-7), NaN, +Inf, -Inf. A histogram's series are `_bucket{...,le="<bound>"}`
 * (cumulative), `_bucket{...,le="+Inf"}` (= count), `_sum`, `_count`. Unlike prom-client, `le` comes
 * after the other labels and families are not separated by blank lines; neither matters to a parser.
 *
 * addProcessMetrics(registry) adds the process_* and nodejs_* families, computed only when scraped.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

/** What /metrics answers with: the Prometheus text format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type LabelValue = string | number;
/** One value per label name, in the order of the names. */
export type LabelValues<L extends readonly string[]> = { readonly [K in keyof L]: LabelValue };

/** A counter series: only goes up. */
export interface Counter {
  /** Add n (default 1); n must be >= 0. */
  inc(n?: number): void;
  readonly value: number;
}

/** A gauge series: any value. */
export interface Gauge {
  set(value: number): void;
  inc(n?: number): void;
  dec(n?: number): void;
  /** Set to the current time in seconds since the epoch. */
  setToCurrentTime(): void;
  readonly value: number;
}

/** A histogram series. */
export interface Histogram {
  observe(value: number): void;
  readonly count: number;
  readonly sum: number;
}

/** A metric with labels: one series per combination of label values. */
export interface Labelled<S, L extends readonly string[]> {
  readonly name: string;
  readonly labelNames: L;
  /** The series for these values (in labelNames order), created at 0 the first time. */
  labels(...values: LabelValues<L>): S;
  /** Create the series for these values (at 0) if it does not exist yet. */
  zero(...values: LabelValues<L>): void;
}

export interface MetricOptions {
  readonly name: string;
  readonly help: string;
  /** Run at scrape time before anything is rendered; may be async. */
  readonly collect?: () => void | Promise<void>;
}

export interface LabelledOptions<L extends readonly string[]> extends MetricOptions {
  readonly labelNames: L;
}

export interface ValueOptions extends MetricOptions {
  /** The series' value, read at scrape time (undefined: no sample this time). */
  readonly value?: () => number | undefined;
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, strictly increasing; +Inf is implied. */
  readonly buckets: readonly number[];
}

type Kind = 'counter' | 'gauge' | 'histogram';
type NonEmpty = readonly [string, ...string[]];

class CounterSeries implements Counter {
  value = 0;

  inc(n = 1): void {
    if (!(n >= 0)) throw new RangeError(`a counter only goes up (inc(${n}))`);
    this.value += n;
  }
}

class GaugeSeries implements Gauge {
  value = 0;

  set(value: number): void {
    this.value = value;
  }

  inc(n = 1): void {
    this.value += n;
  }

  dec(n = 1): void {
    this.value -= n;
  }

  setToCurrentTime(): void {
    this.value = Date.now() / 1000;
  }
}

class HistogramSeries implements Histogram {
  readonly bounds: Float64Array;
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; the last one those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: Float64Array) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (Number.isNaN(value)) return;
    const bounds = this.bounds;
    const n = bounds.length;
    let i = 0;
    while (i < n && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

type Series = CounterSeries | GaugeSeries | HistogramSeries;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** One metric family: its series in creation order, each with its label pairs rendered once. */
class Family<S extends Series> implements Labelled<S, readonly string[]> {
  readonly name: string;
  readonly labelNames: readonly string[];
  readonly collect: (() => void | Promise<void>) | undefined;
  readonly #head: string;
  readonly #create: () => S;
  readonly #value: (() => number | undefined) | undefined;
  readonly #series: S[] = [];
  /** Label pairs (`a="x",b="y"`) of #series[i]; '' without labels. */
  readonly #pairs: string[] = [];
  readonly #byPairs = new Map<string, S>();
  /** Histograms: the `le` values, formatted once. */
  readonly #le: readonly string[];

  constructor(
    kind: Kind,
    options: MetricOptions & {
      readonly labelNames?: readonly string[];
      readonly value?: () => number | undefined;
    },
    create: () => S,
    le: readonly string[] = [],
  ) {
    const { name, help } = options;
    if (!METRIC_NAME.test(name)) throw new TypeError(`invalid metric name: ${JSON.stringify(name)}`);
    const labelNames = options.labelNames ?? [];
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__') || (kind === 'histogram' && label === 'le'))
        throw new TypeError(`${name}: invalid label name ${JSON.stringify(label)}`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new TypeError(`${name}: duplicate label names`);
    if (options.value && labelNames.length > 0)
      throw new TypeError(`${name}: value() is for metrics without labels`);
    this.name = name;
    this.labelNames = [...labelNames];
    this.collect = options.collect;
    this.#head = `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${kind}`;
    this.#create = create;
    this.#value = options.value;
    this.#le = le;
    if (labelNames.length === 0) this.labels();
  }

  labels(...values: readonly LabelValue[]): S {
    const names = this.labelNames;
    if (values.length !== names.length)
      throw new TypeError(
        `${this.name}: ${names.length} label values expected (${names.join(', ')}), got ${values.length}`,
      );
    let pairs = '';
    for (let i = 0; i < names.length; i++)
      pairs += `${i === 0 ? '' : ','}${names[i]}="${escapeLabelValue(String(values[i]))}"`;
    let series = this.#byPairs.get(pairs);
    if (series === undefined) {
      series = this.#create();
      this.#byPairs.set(pairs, series);
      this.#series.push(series);
      this.#pairs.push(pairs);
    }
    return series;
  }

  zero(...values: readonly LabelValue[]): void {
    this.labels(...values);
  }

  /** The only series of a metric without labels. */
  get single(): S {
    return this.#series[0]!;
  }

  render(out: string[]): void {
    const name = this.name;
    out.push(this.#head);
    if (this.#value) {
      const v = this.#value();
      if (v !== undefined) out.push(`${name} ${formatNumber(v)}`);
      return;
    }
    for (let i = 0; i < this.#series.length; i++) {
      const series = this.#series[i]!;
      const pairs = this.#pairs[i]!;
      if (series instanceof HistogramSeries) {
        const prefix = pairs === '' ? '{' : `{${pairs},`;
        let cumulative = 0;
        for (let b = 0; b < this.#le.length; b++) {
          cumulative += series.counts[b]!;
          out.push(`${name}_bucket${prefix}le="${this.#le[b]}"} ${formatNumber(cumulative)}`);
        }
        const labels = pairs === '' ? '' : `{${pairs}}`;
        out.push(
          `${name}_bucket${prefix}le="+Inf"} ${formatNumber(series.count)}`,
          `${name}_sum${labels} ${formatNumber(series.sum)}`,
          `${name}_count${labels} ${formatNumber(series.count)}`,
        );
      } else {
        out.push(`${name}${pairs === '' ? '' : `{${pairs}}`} ${formatNumber(series.value)}`);
      }
    }
  }
}

/** A set of metric families and their exposition. */
export class Registry {
  readonly contentType = PROMETHEUS_CONTENT_TYPE;
  readonly #families: Array<Family<Series>> = [];
  readonly #names = new Set<string>();

  counter<const L extends NonEmpty>(options: LabelledOptions<L>): Labelled<Counter, L>;
  counter(options: ValueOptions): Counter;
  counter(
    options: ValueOptions & { readonly labelNames?: readonly string[] },
  ): Counter | Labelled<Counter, L0> {
    return this.#add(new Family('counter', options, () => new CounterSeries()));
  }

  gauge<const L extends NonEmpty>(options: LabelledOptions<L>): Labelled<Gauge, L>;
  gauge(options: ValueOptions): Gauge;
  gauge(options: ValueOptions & { readonly labelNames?: readonly string[] }): Gauge | Labelled<Gauge, L0> {
    return this.#add(new Family('gauge', options, () => new GaugeSeries()));
  }

  histogram<const L extends NonEmpty>(options: HistogramOptions & LabelledOptions<L>): Labelled<Histogram, L>;
  histogram(options: HistogramOptions): Histogram;
  histogram(
    options: HistogramOptions & { readonly labelNames?: readonly string[] },
  ): Histogram | Labelled<Histogram, L0> {
    const bounds = options.buckets.filter((b) => b !== Number.POSITIVE_INFINITY);
    if (bounds.length === 0) throw new TypeError(`${options.name}: no buckets`);
    for (let i = 0; i < bounds.length; i++) {
      if (!Number.isFinite(bounds[i]) || (i > 0 && !(bounds[i]! > bounds[i - 1]!)))
        throw new TypeError(`${options.name}: buckets must be finite and strictly increasing`);
    }
    const shared = Float64Array.from(bounds);
    return this.#add(
      new Family('histogram', options, () => new HistogramSeries(shared), bounds.map(formatNumber)),
    );
  }

  /** Run every collect, then render every family (text format 0.0.4). */
  async render(): Promise<string> {
    const pending: Array<Promise<void>> = [];
    for (const family of this.#families) {
      const done = family.collect?.();
      if (done) pending.push(done);
    }
    if (pending.length > 0) await Promise.all(pending);
    const out: string[] = [];
    for (const family of this.#families) family.render(out);
    return out.length === 0 ? '' : `${out.join('\n')}\n`;
  }

  #add<S extends Series>(family: Family<S>): S | Family<S> {
    if (this.#names.has(family.name)) throw new Error(`metric ${family.name} is already registered`);
    this.#names.add(family.name);
    this.#families.push(family as Family<Series>);
    return family.labelNames.length === 0 ? family.single : family;
  }
}

type L0 = readonly string[];

/** Help text: backslash and newline escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Label value: backslash, double quote and newline escaped. */
function escapeLabelValue(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : value;
}

/** A sample value as Prometheus reads it: 3, 0.25, 1e-7, NaN, +Inf, -Inf. */
function formatNumber(value: number): string {
  if (Number.isFinite(value)) return String(value);
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? '+Inf' : '-Inf';
}

/**
 * The process_* and nodejs_* families prom-client's default metrics had (same names, types and help), all
 * computed when scraped, so they cost the request path nothing:
 *
 *   process_cpu_user_seconds_total, process_cpu_system_seconds_total, process_cpu_seconds_total (counters;
 *     process.cpuUsage(), i.e. since the process started; prom-client counted from its own start)
 *   process_start_time_seconds
 *   process_resident_memory_bytes, process_virtual_memory_bytes, process_heap_bytes (VmRSS, VmSize, VmData
 *     from /proc/self/status; without /proc only the resident size, from process.memoryUsage.rss())
 *   process_open_fds (/proc/self/fd), process_max_fds (soft limit, /proc/self/limits)
 *   nodejs_eventloop_lag_seconds: how long a setImmediate() issued at scrape time waited, i.e. what the
 *     event loop had queued before it (render() awaits it). No perf_hooks.monitorEventLoopDelay: its timer
 *     would wake the loop continuously for a figure read once a scrape interval.
 *   nodejs_active_handles_total, nodejs_active_requests_total (libuv handles and requests, when node has
 *     process._getActiveHandles/_getActiveRequests, as prom-client used)
 *   nodejs_heap_size_total_bytes, nodejs_heap_size_used_bytes, nodejs_external_memory_bytes
 *   nodejs_heap_space_size_{total,used,available}_bytes{space}
 *   nodejs_version_info{version,major,minor,patch} 1
 *
 * Not kept from prom-client: nodejs_gc_duration_seconds (a PerformanceObserver called on every
 * collection), nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds (monitorEventLoopDelay),
 * and the per-type nodejs_active_{handles,requests,resources}{type}.
 * A series whose source cannot be read when scraped (/proc gone) is left out of that scrape.
 */
export function addProcessMetrics(registry: Registry): void {
  let cpu = process.cpuUsage();
  registry.counter({
    name: 'process_cpu_user_seconds_total',
    help: 'Total user CPU time spent in seconds.',
    collect: () => {
      cpu = process.cpuUsage();
    },
    value: () => cpu.user / 1e6,
  });
  registry.counter({
    name: 'process_cpu_system_seconds_total',
    help: 'Total system CPU time spent in seconds.',
    value: () => cpu.system / 1e6,
  });
  registry.counter({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    value: () => (cpu.user + cpu.system) / 1e6,
  });
  const started = Math.round(Date.now() / 1000 - process.uptime());
  registry.gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since unix epoch in seconds.',
    value: () => started,
  });

  const hasProc = readProcStatus() !== undefined;
  let status: ProcStatus | undefined;
  registry.gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    collect: () => {
      status = hasProc ? readProcStatus() : undefined;
    },
    value: () => (hasProc ? status?.rss : process.memoryUsage.rss()),
  });
  if (hasProc) {
    registry.gauge({
      name: 'process_virtual_memory_bytes',
      help: 'Virtual memory size in bytes.',
      value: () => status?.virtual,
    });
    registry.gauge({
      name: 'process_heap_bytes',
      help: 'Process heap size in bytes.',
      value: () => status?.data,
    });
    registry.gauge({
      name: 'process_open_fds',
      help: 'Number of open file descriptors.',
      value: openFds,
    });
    registry.gauge({
      name: 'process_max_fds',
      help: 'Maximum number of open file descriptors.',
      value: maxFds,
    });
  }

  let lag = 0;
  registry.gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    collect: () =>
      new Promise<void>((resolve) => {
        const start = process.hrtime.bigint();
        setImmediate(() => {
          lag = Number(process.hrtime.bigint() - start) / 1e9;
          resolve();
        });
      }),
    value: () => lag,
  });

  const internals = process as unknown as {
    _getActiveHandles?: () => unknown[];
    _getActiveRequests?: () => unknown[];
  };
  if (typeof internals._getActiveHandles === 'function') {
    registry.gauge({
      name: 'nodejs_active_handles_total',
      help: 'Total number of active handles.',
      value: () => internals._getActiveHandles!().length,
    });
  }
  if (typeof internals._getActiveRequests === 'function') {
    registry.gauge({
      name: 'nodejs_active_requests_total',
      help: 'Total number of active requests.',
      value: () => internals._getActiveRequests!().length,
    });
  }

  let memory: NodeJS.MemoryUsage | undefined;
  registry.gauge({
    name: 'nodejs_heap_size_total_bytes',
    help: 'Process heap size from Node.js in bytes.',
    collect: () => {
      memory = process.memoryUsage();
    },
    value: () => memory?.heapTotal,
  });
  registry.gauge({
    name: 'nodejs_heap_size_used_bytes',
    help: 'Process heap size used from Node.js in bytes.',
    value: () => memory?.heapUsed,
  });
  registry.gauge({
    name: 'nodejs_external_memory_bytes',
    help: 'Node.js external memory size in bytes.',
    value: () => memory?.external,
  });

  const spaces = (['total', 'used', 'available'] as const).map((kind) =>
    registry.gauge({
      name: `nodejs_heap_space_size_${kind}_bytes`,
      help: `Process heap space size ${kind} from Node.js in bytes.`,
      labelNames: ['space'],
      collect: kind === 'total' ? readSpaces : undefined,
    }),
  );
  function readSpaces(): void {
    for (const s of getHeapSpaceStatistics()) {
      const space = s.space_name.endsWith('_space') ? s.space_name.slice(0, -'_space'.length) : s.space_name;
      spaces[0]!.labels(space).set(s.space_size);
      spaces[1]!.labels(space).set(s.space_used_size);
      spaces[2]!.labels(space).set(s.space_available_size);
    }
  }
  readSpaces();

  const [major, minor, patch] = process.version.slice(1).split('.');
  registry
    .gauge({
      name: 'nodejs_version_info',
      help: 'Node.js version info.',
      labelNames: ['version', 'major', 'minor', 'patch'],
    })
    .labels(process.version, major ?? '', minor ?? '', patch ?? '')
    .set(1);
}

interface ProcStatus {
  readonly rss?: number;
  readonly virtual?: number;
  readonly data?: number;
}

/** VmRSS, VmSize and VmData from /proc/self/status, in bytes; undefined without /proc. */
function readProcStatus(): ProcStatus | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/status', 'latin1');
  } catch {
    return undefined;
  }
  const kb = (field: string): number | undefined => {
    const m = new RegExp(`^${field}:\\s*(\\d+) kB$`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  return { rss: kb('VmRSS'), virtual: kb('VmSize'), data: kb('VmData') };
}

function openFds(): number | undefined {
  try {
    // Less the descriptor readdirSync itself had open while it listed the directory.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
