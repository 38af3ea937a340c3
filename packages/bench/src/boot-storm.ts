#!/usr/bin/env node
// `npm run bench:boot-storm`: N instances (default 1,000), each with its own source address on loopback
// (127.20.x.y: the whole 127/8 is local, no root needed), all booting at once, each running cloud-init's
// read sequence with a new connection per request, through proxy -> agent (resolver behind the port
// cache) -> nova-metadata-dev. The resolver (--resolver):
//   neutron  the REST resolver against a fake Keystone + Neutron answering port lookups after 2 ms;
//   rpc      the RPC resolver over a throwaway RabbitMQ node to neutron's own MetadataRpcCallback
//            (python3-neutron, the lab's python server) whose core plugin answers after 2 ms.
// Reports the time to the last answer, failed or wrong answers, and how many port lookups reached Neutron;
// then the resolver's own per-lookup latency (p50/p99 of uncached lookups, one at a time and 50 at once).
// Each run starts every process afresh (empty cache).
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type BenchChain,
  fmt,
  type Memory,
  median,
  memoryOf,
  NETWORK_ID,
  ROOT,
  requireBuilt,
  resultsDir,
  stamp,
  startChain,
  textTable,
  waitForQuiet,
} from '@nmp/bench';
import { type InstanceResolver, type LookupQuery, loadConfig, silentLogger } from '@nmp/common';
import { AGENT_COMPAT, agentSchema, createNeutronResolver, createRpcResolver } from '@nmp/metadata-agent';
import { FAKE_DEFAULTS, fakeNeutronResolverArgs } from '@nmp/openstack-fakes';
import { summariseProfileFile } from './cpuprofile-summary.js';
import type { FakeMessage, FakeRequest } from './fake-openstack-server.js';
import { startNeutronRpcBackend } from './rpc-backend.js';
import {
  runStorm,
  STORM_PROJECT,
  type StormInstance,
  type StormResult,
  stormInstance,
  stormNovaInstance,
} from './storm-instances.js';

const USAGE = `usage: npm run bench:boot-storm -- [--resolver neutron|rpc] [--instances N] [--runs N] [--latency-ms MS] [--json]

  --resolver R     neutron (REST, fake OpenStack; default) or rpc (RabbitMQ + neutron's python RPC server)

  --instances N    instances booting at once (default 1000, at most 60000)
  --runs N         runs, each with fresh processes; medians reported (default 3)
  --latency-ms MS  delay of every Neutron answer (fake REST, or the RPC server's core plugin; default 2)
  --lookups N      uncached lookups timed per latency phase after the runs (default 1000; 0 = none)
  --rpc-workers N  --resolver rpc: neutron-server RPC worker processes consuming q-plugin (default 2, as
                   neutron's rpc_workers on a small controller)
  --json           print the summary as one JSON line on stdout (progress goes to stderr)
  --profile        run proxy, agent and Nova with --cpu-prof; summarise run 1 into docs/profiles/boot-storm-*.md
  --no-write       with --profile: print the summaries instead of writing docs/profiles/
  --quiet-wait S   before each run, wait up to S seconds for other processes to go quiet (default 30)
`;

const VERSION = '2018-08-27';
const SEQUENCE = [
  '/openstack',
  '/openstack',
  'meta_data.json',
  'user_data',
  'vendor_data.json',
  'vendor_data2.json',
  'network_data.json',
];
const PROJECT = STORM_PROJECT;

type Log = (message: string) => void;

interface Topology {
  readonly instances: StormInstance[];
  readonly portsFile: string;
  readonly instancesFile: string;
}

function writeTopology(dir: string, n: number): Topology {
  const instances = Array.from({ length: n }, (_, k) => stormInstance(k));
  const subnet = '5707c000-0000-4000-8000-000000000001';
  const ports = instances.map((i) => ({
    id: i.portId,
    network_id: NETWORK_ID,
    mac_address: i.mac,
    fixed_ips: [{ subnet_id: subnet, ip_address: i.ip }],
    device_id: i.uuid,
    device_owner: 'compute:nova',
    project_id: PROJECT,
  }));
  const nova = instances.map((i) => stormNovaInstance(i, NETWORK_ID, 1450));
  const portsFile = join(dir, 'ports.json');
  const instancesFile = join(dir, 'instances.json');
  writeFileSync(portsFile, JSON.stringify({ ports }));
  writeFileSync(instancesFile, JSON.stringify({ instances: nova }));
  return { instances, portsFile, instancesFile };
}

type FakeCountsMessage = Extract<FakeMessage, { type: 'counts' }>;
type FakeCounts = FakeCountsMessage['counts'];

interface FakeProcess {
  readonly url: string;
  readonly authUrl: string;
  counts(): Promise<FakeCountsMessage>;
  reset(): Promise<FakeMessage>;
  stop(): Promise<void>;
}

/** The fake OpenStack in its own process (fake-openstack-server.ts). */
function startFake(portsFile: string, latencyMs: number): Promise<FakeProcess> {
  const child = fork(
    fileURLToPath(new URL('./fake-openstack-server.js', import.meta.url)),
    [portsFile, String(latencyMs)],
    {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  // Messages come from our own fake-openstack-server.ts.
  const ask = <T extends FakeRequest['type'] & FakeMessage['type']>(type: T) =>
    new Promise<Extract<FakeMessage, { type: T }>>((resolve, reject) => {
      const onMsg = (m: FakeMessage) => {
        if (m?.type === type) {
          child.off('message', onMsg);
          resolve(m as Extract<FakeMessage, { type: T }>);
        }
      };
      child.on('message', onMsg);
      const request: FakeRequest = { type };
      child.send(request, (err) => err && reject(err));
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('fake OpenStack did not start within 15 s')), 15_000);
    child.once('exit', (code) => reject(new Error(`fake OpenStack exited (${code})`)));
    child.once('message', (m: FakeMessage) => {
      clearTimeout(timer);
      if (m.type !== 'ready') return reject(new Error(`fake OpenStack: ${m.type} before ready`));
      resolve({
        url: m.url,
        authUrl: m.authUrl,
        counts: () => ask('counts'),
        reset: () => ask('reset'),
        stop: () =>
          new Promise<void>((r) => {
            if (child.exitCode !== null) return r();
            child.once('exit', () => r());
            const stop: FakeRequest = { type: 'stop' };
            child.send(stop);
            setTimeout(() => child.kill('SIGKILL'), 3000).unref();
          }),
      });
    });
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      instances: { type: 'string', default: '1000' },
      runs: { type: 'string', default: '3' },
      'latency-ms': { type: 'string', default: '2' },
      resolver: { type: 'string', default: 'neutron' },
      lookups: { type: 'string', default: '1000' },
      'rpc-workers': { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string', default: '30' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const n = Number(values.instances);
  const runs = Number(values.runs);
  const latencyMs = Number(values['latency-ms']);
  if (
    !Number.isInteger(n) ||
    n < 1 ||
    n > 60_000 ||
    !Number.isInteger(runs) ||
    runs < 1 ||
    runs > 20 ||
    !(latencyMs >= 0) ||
    (values.resolver !== 'neutron' && values.resolver !== 'rpc') ||
    !(Number(values.lookups) >= 0)
  ) {
    process.stderr.write(`boot-storm: bad arguments\n\n${USAGE}`);
    process.exit(2);
  }
  requireBuilt();
  const log: Log = (m) => {
    process.stderr.write(`${m}\n`);
  };
  const dir = resultsDir(`storm-${stamp()}`);
  const topo = writeTopology(dir, n);
  log(
    `boot storm: ${n} instances, resolver ${values.resolver}, Neutron latency ${latencyMs} ms, ${runs} run(s); logs in ${relative(ROOT, dir)}/`,
  );

  const fake: Backend =
    values.resolver === 'rpc'
      ? await startRpcBackend(topo, latencyMs, log, Number(values['rpc-workers']))
      : await startRestBackend(topo, latencyMs);
  const results: BootStormRun[] = [];
  let latency: LookupLatency | undefined;
  try {
    for (let run = 1; run <= runs; run++) {
      await fake.reset();
      const logDir = join(dir, `run-${run}`);
      mkdirSync(logDir, { recursive: true });
      const waited = await waitForQuiet(Number(values['quiet-wait']));
      if (waited > 1) log(`  (waited ${Math.round(waited)} s for the machine to be quiet)`);
      const chain = await startChain({
        logDir,
        ...(values.profile ? { cpuProf: join(logDir, 'profiles') } : {}),
        instancesFile: topo.instancesFile,
        agentArgs: fake.agentArgs,
        agentEnv: fake.agentEnv,
      });
      if (fake.waitForAgent) await fake.waitForAgent(chain);
      try {
        const storm = await runStorm(chain, topo.instances, { logDir, version: VERSION });
        const { counts, maxForOneAddress } = await fake.counts();
        const r: BootStormRun = Object.assign(storm, {
          neutron: counts,
          lookupsPerInstance: counts.portLookups / n,
          maxLookupsForOneAddress: maxForOneAddress,
          memory: { agent: memoryOf(chain.agent.pid), proxy: memoryOf(chain.proxy!.pid) },
        });
        results.push(r);
        log(
          `  run ${run}: last answer after ${r.seconds.toFixed(2)} s; ${r.requests} requests, ${r.failed} failed; ` +
            `${counts.portLookups} port lookups, ${counts.tokenRequests} token requests; p50 ${fmt.ms(r.p50)} ms, p99 ${fmt.ms(r.p99)} ms`,
        );
        log(
          `         CPU s: ${Object.entries(r.cpuS)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(', ')}; other processes ${Math.round(r.otherCpuShare * 100)}% of a core`,
        );
        for (const f of r.failureExamples) log(`    failed: ${JSON.stringify(f)}`);
      } finally {
        await chain.stop();
      }
      if (values.profile && run === 1) profiles(logDir, n, results[0]!, !values['no-write'], log);
    }
    if (Number(values.lookups) > 0) {
      latency = await fake.latency(topo.instances, Number(values.lookups));
      log(
        `  per-lookup latency (${values.resolver}, uncached): one at a time p50 ${fmt.ms(latency.serial.p50)} ms, p99 ${fmt.ms(latency.serial.p99)} ms; ` +
          `50 at once p50 ${fmt.ms(latency.concurrent.p50)} ms, p99 ${fmt.ms(latency.concurrent.p99)} ms`,
      );
    }
  } finally {
    await fake.stop();
  }
  const summary = {
    instances: n,
    resolver: values.resolver,
    lookupLatency: latency,
    neutronLatencyMs: latencyMs,
    sequence: SEQUENCE,
    version: VERSION,
    runs: results,
    medianSeconds: median(results.map((r) => r.seconds)),
    maxLookupsPerInstance: Math.max(...results.map((r) => r.lookupsPerInstance)),
    allOk: results.every((r) => r.failed === 0 && r.requests === n * SEQUENCE.length),
  };
  writeFileSync(join(dir, 'results.json'), JSON.stringify(summary, null, 2));
  const table = textTable(
    [
      'run',
      'last answer s',
      'requests',
      'failed',
      'port lookups',
      'lookups/instance',
      'p50 ms',
      'p99 ms',
      'agent RSS MB',
    ],
    results.map((r, i) => [
      i + 1,
      r.seconds.toFixed(2),
      r.requests,
      r.failed,
      r.neutron.portLookups,
      r.lookupsPerInstance.toFixed(2),
      fmt.ms(r.p50),
      fmt.ms(r.p99),
      fmt.mb(r.memory.agent.rssKb),
    ]),
  );
  if (values.json) {
    log(`\n${table}\n\nmedian time to last answer ${summary.medianSeconds.toFixed(2)} s`);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    process.stdout.write(`\n${table}\n\nmedian time to last answer ${summary.medianSeconds.toFixed(2)} s\n`);
  }
}

/** One run's storm result with Neutron's counts and the memory of agent and proxy. */
interface BootStormRun extends StormResult {
  neutron: Pick<FakeCounts, 'portLookups' | 'tokenRequests'> & Partial<FakeCounts>;
  lookupsPerInstance: number;
  maxLookupsForOneAddress: number;
  memory: { agent: Memory; proxy: Memory };
}

/** Summaries of the profiles of one storm run: docs/profiles/boot-storm-<process>.md. */
function profiles(logDir: string, n: number, r: BootStormRun, write: boolean, log: Log): void {
  const dir = join(logDir, 'profiles');
  for (const name of ['proxy', 'agent', 'nova']) {
    const file = join(dir, `${name}.cpuprofile`);
    if (!existsSync(file)) {
      log(`no profile written for ${name} (${file})`);
      continue;
    }
    const { markdown } = summariseProfileFile(file, {
      title: `${name}: CPU profile during a boot storm of ${n} instances`,
      context: `\`npm run bench:boot-storm -- --profile\`, ${new Date().toISOString().slice(0, 10)}: ${n} instances, each running cloud-init's 7 requests on new connections, all at once; last answer after ${r.seconds.toFixed(2)} s while profiled; ${r.cpuS[name]?.toFixed(2)} s CPU in this process; node ${process.version}.`,
      foldedFile: join(dir, `${name}.folded`),
      svgFile: join(dir, `${name}.svg`),
    });
    if (write) {
      const md = join(ROOT, 'docs/profiles', `boot-storm-${name}.md`);
      writeFileSync(md, markdown);
      log(`wrote ${relative(ROOT, md)} (flame graph: ${relative(ROOT, join(dir, `${name}.svg`))})`);
    } else {
      process.stderr.write(`${markdown}\n`);
    }
  }
}

/** Most port lookups seen for one address among the fake's last 1,000 port queries. */
function maxPerAddress(queries: readonly string[]): number {
  const per = new Map<string, number>();
  for (const q of queries) {
    const ip = new URLSearchParams(q).getAll('fixed_ips').find((f) => f.startsWith('ip_address='));
    if (ip) per.set(ip, (per.get(ip) ?? 0) + 1);
  }
  return Math.max(0, ...per.values());
}

/** p50/p99 (ms) of `count` uncached lookups of the storm's addresses, one at a time and 50 at once. */
interface Quantiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

interface LookupLatency {
  readonly count: number;
  readonly serial: Quantiles;
  readonly concurrent: Quantiles;
}

async function timeLookups(
  resolver: InstanceResolver,
  instances: readonly StormInstance[],
  count: number,
): Promise<LookupLatency> {
  const query = (k: number): LookupQuery => ({
    mode: 'network',
    id: NETWORK_ID,
    ip: instances[k % instances.length]!.ip,
  });
  const one = async (k: number) => {
    const t0 = performance.now();
    await resolver.resolve(query(k), { noCache: true });
    return performance.now() - t0;
  };
  for (let k = 0; k < 20; k++) await one(k); // warm-up: connections, token, JIT
  const serial: number[] = [];
  for (let k = 0; k < count; k++) serial.push(await one(k));
  const concurrent: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < count) concurrent.push(await one(next++));
    }),
  );
  return { count, serial: quantiles(serial), concurrent: quantiles(concurrent) };
}

function quantiles(values: readonly number[]): Quantiles {
  const s = [...values].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { p50: q(0.5), p99: q(0.99), max: s[s.length - 1]! };
}

/** Where the agent's port lookups go, with its counters and the resolver's own latency. */
interface Backend {
  readonly agentArgs: readonly string[];
  readonly agentEnv: Readonly<Record<string, string>>;
  /** Resolves once the agent of `chain` can look ports up. */
  waitForAgent?(chain: BenchChain): Promise<void>;
  reset(): Promise<unknown>;
  counts(): Promise<{ counts: BootStormRun['neutron']; maxForOneAddress: number }>;
  latency(instances: readonly StormInstance[], count: number): Promise<LookupLatency>;
  stop(): Promise<void>;
}

/** The REST resolver's backend: the fake Keystone + Neutron. */
async function startRestBackend(topo: Topology, latencyMs: number): Promise<Backend> {
  const fake = await startFake(topo.portsFile, latencyMs);
  return {
    agentArgs: fakeNeutronResolverArgs(fake.authUrl),
    agentEnv: { NMP_NEUTRON__PASSWORD: FAKE_DEFAULTS.password },
    reset: () => fake.reset(),
    async counts() {
      const { counts, portQueries } = await fake.counts();
      return { counts, maxForOneAddress: maxPerAddress(portQueries) };
    },
    async latency(instances, count) {
      const resolver = createNeutronResolver(
        {
          authUrl: fake.authUrl,
          authType: 'password',
          username: FAKE_DEFAULTS.username,
          password: FAKE_DEFAULTS.password,
          userDomainName: FAKE_DEFAULTS.userDomainName,
          projectName: FAKE_DEFAULTS.projectName,
          projectDomainName: FAKE_DEFAULTS.projectDomainName,
        },
        silentLogger(),
      );
      try {
        return await timeLookups(resolver, instances, count);
      } finally {
        await resolver.close();
      }
    },
    stop: () => fake.stop(),
  };
}

/** The RPC resolver's backend: a throwaway RabbitMQ node and neutron's own RPC server code (python). */
async function startRpcBackend(
  topo: Topology,
  latencyMs: number,
  log: Log,
  workers: number,
): Promise<Backend> {
  // The file writeTopology wrote.
  const { ports } = JSON.parse(readFileSync(topo.portsFile, 'utf8')) as { ports: unknown[] };
  let backend: Awaited<ReturnType<typeof startNeutronRpcBackend>>;
  try {
    backend = await startNeutronRpcBackend({ ports, latencyMs, workers, log });
  } catch (err) {
    throw new Error(`--resolver rpc: ${(err as Error).message}`);
  }
  const { url } = backend;
  return {
    agentArgs: ['--resolver', 'rpc'],
    agentEnv: { NMP_TRANSPORT_URL: url },
    async waitForAgent(chain) {
      // Lookups arriving first would wait for the broker connection (they may): the storm is to
      // measure lookups, not the connection set-up.
      const deadline = Date.now() + 15_000;
      while (!/"code":"MDA_RPC_CONNECTED"/.test(readFileSync(join(chain.logDir, 'agent.log'), 'utf8'))) {
        if (Date.now() > deadline) throw new Error('the agent did not connect to RabbitMQ within 15 s');
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    reset: () => backend.reset(),
    async counts() {
      // Calls are spread over the workers: added up.
      const { calls, maxForOneAddress } = await backend.counts();
      return { counts: { portLookups: calls, tokenRequests: 0 }, maxForOneAddress };
    },
    async latency(instances, count) {
      const cfg = loadConfig(agentSchema, {
        flags: { resolver: 'rpc' },
        env: { NMP_TRANSPORT_URL: url },
        compat: AGENT_COMPAT,
      }).config;
      const parts = createRpcResolver(
        {
          config: { ...cfg, reportInterval: 0 },
          routerCacheTtlMs: 30_000,
          facts: { version: 'bench', socketPath: '', novaHost: '', novaPort: 0 },
        },
        silentLogger(),
      );
      parts.broker.start();
      try {
        return await timeLookups(parts.resolver, instances, count);
      } finally {
        await parts.resolver.close();
      }
    },
    stop: () => backend.stop(),
  };
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`boot-storm: ${(err instanceof Error && err.stack) || err}\n`);
    process.exit(1);
  },
);
