// The boot storm's instances, in a process of their own: every instance, from its own source address,
// runs cloud-init's read sequence (reference.md §8: /openstack twice, then meta_data.json, user_data,
// vendor_data.json, vendor_data2.json, network_data.json), one request after the other, a new connection
// for each; all instances start at once. Argument: a JSON file {url, version, instances: [{ip, uuid, url?}],
// timeoutMs, retries?, retryDelayMs?} (a ClientSpec): an instance's own url replaces the common one; with
// retries, a request that failed is tried again up to that many times after retryDelayMs, as cloud-init's
// url_helper does (its OpenStack datasource: retries 5, 1 s apart). Prints one JSON line (a ClientResult):
// time to the last answer, failures (requests that failed every try), failed tries, latency percentiles (of
// answered tries).

import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { ClientFailure, ClientInstance, ClientResult, ClientSpec } from './storm-instances.js';

function readSpec(file: string | undefined): ClientSpec {
  if (file === undefined) throw new Error('usage: storm-client.js SPEC_FILE');
  // Written by storm-instances.ts or region.ts: checked for what this program relies on.
  const spec: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (
    typeof spec !== 'object' ||
    spec === null ||
    typeof (spec as { version?: unknown }).version !== 'string' ||
    !Array.isArray((spec as { instances?: unknown }).instances)
  )
    throw new Error(`${file}: not a storm client spec`);
  return spec as ClientSpec;
}

const spec = readSpec(process.argv[2]);
const v = spec.version;
const SEQUENCE = [
  '/openstack',
  '/openstack',
  `/openstack/${v}/meta_data.json`,
  `/openstack/${v}/user_data`,
  `/openstack/${v}/vendor_data.json`,
  `/openstack/${v}/vendor_data2.json`,
  `/openstack/${v}/network_data.json`,
];
const HEADERS = { 'User-Agent': 'Cloud-Init/24.4', 'Accept-Encoding': 'gzip, deflate', Accept: '*/*' };

interface Answer {
  readonly status: number;
  readonly body?: string;
  readonly error?: string;
  readonly ms: number;
}

const errorOf = (err: Error): string => (err as NodeJS.ErrnoException).code ?? err.message;

function get(base: string, path: string, localAddress: string): Promise<Answer> {
  const t = process.hrtime.bigint();
  return new Promise((resolve) => {
    const req = request(`${base}${path}`, { agent: false, localAddress, headers: HEADERS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          ms: Number(process.hrtime.bigint() - t) / 1e6,
        }),
      );
      res.on('error', (err) => resolve({ status: 0, error: errorOf(err), ms: 0 }));
    });
    req.setTimeout(spec.timeoutMs ?? 10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, error: errorOf(err), ms: 0 }));
    req.end();
  });
}

const latencies: number[] = [];
const failures: ClientFailure[] = [];
let requests = 0;
let lastAnswer = 0n;

const retries = spec.retries ?? 0;
const retryDelayMs = spec.retryDelayMs ?? 1000;
const failedTries: (ClientFailure & { at: number })[] = [];
let retried = 0;

async function boot(inst: ClientInstance): Promise<void> {
  for (const path of SEQUENCE) {
    for (let attempt = 0; ; attempt++) {
      const r = await get(inst.url ?? spec.url ?? '', path, inst.ip);
      lastAnswer = process.hrtime.bigint();
      let ok = r.status === 200;
      if (ok && path.endsWith('meta_data.json')) ok = r.body?.includes(`"uuid": "${inst.uuid}"`) ?? false;
      if (ok && path === '/openstack') ok = r.body?.includes(v) ?? false;
      if (ok) {
        latencies.push(r.ms);
        break;
      }
      const failure: ClientFailure = {
        ip: inst.ip,
        path,
        status: r.status,
        error: r.error,
        body: r.body?.slice(0, 120),
      };
      failedTries.push({ ...failure, at: Number(lastAnswer - t0) / 1e9 });
      if (attempt >= retries) {
        failures.push(failure);
        break;
      }
      retried++;
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs));
    }
    requests++;
  }
}

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await Promise.all(spec.instances.map(boot));
const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const sorted = Float64Array.from(latencies).sort();
const pct = (p: number): number | null =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : null;
const result: ClientResult = {
  instances: spec.instances.length,
  requests,
  failed: failures.length,
  failureExamples: failures.slice(0, 10),
  failedTries: failedTries.length,
  retried,
  failedTryExamples: failedTries.slice(0, 10),
  failedTryTimes: failedTries.map((f) => Math.round(f.at * 10) / 10).slice(0, 2000),
  seconds: Number(lastAnswer - t0) / 1e9,
  elapsedS,
  clientCpuS: (cpu.user + cpu.system) / 1e6,
  p50: pct(0.5),
  p99: pct(0.99),
  max: sorted.length ? sorted[sorted.length - 1]! : null,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
