/*
 * The chain harness shared by the tests, `npm start` (scripts/start-chain.mjs) and the benchmarks
 * (@nmp/bench): the development Nova, the metadata agent's CLI and the proxy's CLI, each started on
 * loopback and a UNIX socket, each stopped by what started it. A caller that passes a TestContext (`t`)
 * has everything stopped in t.after, also when the test fails; every piece also returns its own stop().
 * Fixtures that need more (namespaces, the daemon, a relay) compose on top of these pieces.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type NetConnectOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatHostPort, SERVICE_NODE_FLAGS, withoutSecrets } from '@nmp/common';
import {
  createNovaMetadataServer,
  loadInstances,
  type NovaMetadataServerOptions,
  type RequestInfo,
  SAMPLE_INSTANCES_FILE,
  SAMPLE_INVENTORY_FILE,
} from '@nmp/nova-metadata-dev';
import { sleep } from './netns.js';

/** Where cleanups go: node:test's TestContext (or anything with its `after`). */
export interface Owner {
  after(fn: () => unknown): void;
}

/** The source tree (the checkout this testkit was built in). */
export const SOURCE_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
/** The services' built CLIs in this tree. */
export const CLI = Object.freeze({
  nova: join(SOURCE_ROOT, 'packages/nova-metadata-dev/dist/src/cli.js'),
  agent: join(SOURCE_ROOT, 'packages/metadata-agent/dist/src/cli.js'),
  proxy: join(SOURCE_ROOT, 'packages/ns-metadata-proxy/dist/src/cli.js'),
  hooks: join(SOURCE_ROOT, 'packages/metadata-hooks/dist/src/cli.js'),
  daemon: join(SOURCE_ROOT, 'packages/metadata-proxy-daemon/dist/src/cli.js'),
});
export { SAMPLE_INSTANCES_FILE, SAMPLE_INVENTORY_FILE };
/** The sample network: 127.0.0.1 (and ::1) is instance A on it. */
export const SAMPLE_NETWORK = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
/** Sample instance A (owns 127.0.0.1 and ::1 in the sample inventory). */
export const SAMPLE_INSTANCE = '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10';
export const SAMPLE_PROJECT = 'c0ffee00aabbccddeeff001122334455';

/** A fresh directory under the system temp dir, removed in t.after. */
export function tempDir(t: Owner, prefix = 'nmp-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Done<T> = Exclude<T, undefined | null | false>;

/**
 * Poll `cond` (every 20 ms) until it returns something other than false/undefined/null, and resolve with
 * that; throws "timed out waiting for <what>" after timeoutMs.
 */
export async function until<T>(
  what: string,
  cond: () => T | Promise<T>,
  timeoutMs = 10_000,
): Promise<Done<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined && v !== null && v !== false) return v as Done<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${timeoutMs} ms)`);
    await sleep(20);
  }
}

/** A TCP port free right now on `host` (listen on 0, close again). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Resolve once something accepts connections at `target` ({host, port} or {path}). `alive` returns true
 * while the server's process runs, else why not: waiting stops at once with that reason.
 */
export function waitForConnect(
  target: NetConnectOpts,
  what: string,
  options: { timeoutMs?: number | undefined; alive?: () => true | string } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = createConnection(target);
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        const why = options.alive?.() ?? true;
        if (why !== true) return reject(new Error(`${what} is not running: ${why}`));
        if (Date.now() > deadline) return reject(new Error(`${what} did not come up within ${timeoutMs} ms`));
        setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

/** The environment a service gets: ours without any NMP_* setting or secret, plus `extra`. */
export function serviceEnv(
  extra: Readonly<Record<string, string | undefined>> = {},
  /** Keep the caller's NMP_* settings (`npm start`: the user's configuration); 'all' keeps its secrets too. */
  inherit: boolean | 'all' = false,
): Record<string, string> {
  const env: Record<string, string> = {};
  const base = inherit === 'all' ? process.env : withoutSecrets(process.env);
  for (const [k, v] of Object.entries(base))
    if (v !== undefined && (inherit || !k.startsWith('NMP_'))) env[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export interface ServiceOptions {
  /** Stop it in t.after (SIGKILL if still running). */
  readonly t?: Owner | undefined;
  /** The whole environment (see serviceEnv). */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** node flags before the script. */
  readonly nodeArgs?: readonly string[] | undefined;
  /** A command it runs under (e.g. ['ip', 'netns', 'exec', NS] or valgrind's). */
  readonly wrap?: readonly string[] | undefined;
  /** The node that runs it (a release tree's bin/node); default this one. */
  readonly node?: string | undefined;
  /**
   * Append stdout and stderr to this file instead of keeping them in memory (a full pipe never slows a
   * benchmarked process down); output() then reads the file's tail.
   */
  readonly outFile?: string | undefined;
}

export interface Service {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout + stderr so far (the last 4 MiB), or the tail of outFile. */
  output(): string;
  /** Every `"code":"..."` value the process has printed (in-memory output only). */
  readonly codes: ReadonlySet<string>;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** true while running, else how it ended with the tail of its output. */
  alive(): true | string;
  /**
   * Wait until the output matches, or fail after timeoutMs with the output so far. Resolves with the
   * time (ms since the epoch) the matching output arrived (in-memory output; else when it was seen).
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<number>;
  /** When its start function saw it ready (ms since the epoch). */
  readyAt?: number;
  /** SIGTERM, SIGKILL after graceMs; resolves with how it ended. */
  stop(graceMs?: number): Promise<number | string>;
}

const OUTPUT_KEEP = 4 * 1024 * 1024;
const live = new Set<Service>();
let exitHook = false;

/** Start a long-running node program (see ServiceOptions). */
export function spawnService(
  name: string,
  script: string,
  args: readonly string[],
  options: ServiceOptions = {},
): Service {
  if (!exitHook) {
    exitHook = true;
    // Last resort: never leave a server of ours running when the harness dies.
    process.on('exit', () => {
      for (const s of live) s.child.kill('SIGKILL');
    });
  }
  const argv = [
    ...(options.wrap ?? []),
    options.node ?? process.execPath,
    ...(options.nodeArgs ?? []),
    script,
  ];
  const fd = options.outFile === undefined ? undefined : openSync(options.outFile, 'a');
  const child = spawn(argv[0]!, [...argv.slice(1), ...args], {
    cwd: SOURCE_ROOT,
    env: options.env ?? serviceEnv(),
    stdio: fd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', fd, fd],
  });
  if (fd !== undefined) closeSync(fd);
  let out = '';
  const codes = new Set<string>();
  /** Arrival time of each chunk's end offset in the whole output, for waitFor(). */
  let total = 0;
  const arrivals: Array<[number, number]> = [];
  const collect = (d: Buffer) => {
    const text = d.toString();
    total += text.length;
    arrivals.push([total, Date.now()]);
    if (arrivals.length > 10_000) arrivals.splice(0, 5_000);
    // Scan with a little of what came before, so a code split across chunks is still seen.
    for (const m of (out.slice(-100) + text).matchAll(/"code":"([A-Za-z0-9_]+)"/g)) codes.add(m[1]!);
    out += text;
    if (out.length > OUTPUT_KEEP) out = out.slice(out.length - OUTPUT_KEEP / 2);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const output = () => (options.outFile === undefined ? out : tail(options.outFile, 200));
  let ended: number | string | undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      ended = code ?? signal ?? 'unknown';
      live.delete(service);
      resolve(ended);
    });
    child.once('error', (err) => {
      ended = `not started: ${err.message}`;
      live.delete(service);
      resolve(ended);
    });
  });
  const service: Service = {
    name,
    child,
    pid: child.pid ?? -1,
    output,
    codes,
    exited,
    alive: () => (ended === undefined ? true : `exited (${ended}); output:\n${output().slice(-5000)}`),
    async waitFor(pattern, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const text = output();
        const m = pattern.exec(text);
        if (m) {
          if (options.outFile !== undefined) return Date.now();
          const offset = total - text.length + m.index + m[0].length;
          return arrivals.find(([upTo]) => upTo >= offset)?.[1] ?? Date.now();
        }
        if (ended !== undefined) throw new Error(`${name} exited before ${pattern}:\n${text}`);
        if (Date.now() > end) throw new Error(`${name}: no ${pattern} within ${timeoutMs} ms:\n${text}`);
        await sleep(20);
      }
    },
    async stop(graceMs = 5000) {
      if (ended !== undefined) return ended;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
  live.add(service);
  options.t?.after(() => {
    if (ended === undefined) child.kill('SIGKILL');
    return exited.then(() => undefined);
  });
  return service;
}

/** The last `lines` lines of a file ('(no output)' when unreadable). */
export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

// ---------------------------------------------------------------------------------------------------
// Nova

export interface NovaOptions {
  readonly t?: Owner | undefined;
  readonly sharedSecret: string;
  /** The instances (default: the sample's A, B and C). */
  readonly instances?: NovaMetadataServerOptions['instances'] | undefined;
  /** Every request Nova received, as it received it. */
  readonly onRequest?: ((info: RequestInfo) => void) | undefined;
}

export interface Nova {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** The development Nova in this process on an ephemeral loopback port. */
export async function startNova(options: NovaOptions): Promise<Nova> {
  const nova = createNovaMetadataServer({
    instances: options.instances ?? (await loadInstances(SAMPLE_INSTANCES_FILE)),
    sharedSecret: options.sharedSecret,
    ...(options.onRequest ? { onRequest: options.onRequest } : {}),
  });
  const address = await nova.listen(0, '127.0.0.1');
  options.t?.after(() => nova.close());
  return { port: address.port, url: `http://127.0.0.1:${address.port}`, close: () => nova.close() };
}

export interface CliOptions extends Omit<ServiceOptions, 'env'> {
  /** The process's name in messages (and its output file's). */
  readonly name?: string | undefined;
  /** Another build's cli.js (an A/B of two trees, a release tree). */
  readonly cli?: string | undefined;
  /** Extra flags after the harness's. */
  readonly args?: readonly string[] | undefined;
  /** Extra environment. */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** How long it may take to come up (default 15 s). */
  readonly startTimeoutMs?: number | undefined;
  /** Pass the caller's NMP_* settings on (the agent gets the caller's secrets too), as `npm start` does. */
  readonly inheritEnv?: boolean | undefined;
}

/** nova-metadata-dev's CLI as its own process on 127.0.0.1:`port` (a free one by default). */
export async function startNovaCli(
  options: CliOptions & { sharedSecret: string; port?: number; instancesFile?: string },
): Promise<Service & { port: number; url: string }> {
  const port = options.port ?? (await freePort());
  const nova = spawnService(
    options.name ?? 'nova',
    options.cli ?? CLI.nova,
    [
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--instances',
      options.instancesFile ?? SAMPLE_INSTANCES_FILE,
      '--log-level',
      'warn',
      ...(options.args ?? []),
    ],
    {
      ...options,
      env: serviceEnv(
        { ...options.env, NMP_METADATA_PROXY_SHARED_SECRET: options.sharedSecret },
        options.inheritEnv ? 'all' : false,
      ),
    },
  );
  await ready(nova, { host: '127.0.0.1', port }, options.startTimeoutMs);
  return Object.assign(nova, { port, url: `http://127.0.0.1:${port}` });
}

async function ready(service: Service, target: NetConnectOpts, timeoutMs: number | undefined) {
  try {
    await waitForConnect(target, service.name, { timeoutMs, alive: service.alive });
  } catch (err) {
    await service.stop(1000);
    throw err;
  }
  service.readyAt = Date.now();
}

/** The agent flags for the sample inventory (the static resolver). */
export const SAMPLE_RESOLVER_ARGS: readonly string[] = Object.freeze([
  '--resolver',
  'inventory',
  '--inventory-file',
  SAMPLE_INVENTORY_FILE,
]);

/** The agent's flags: its socket, the resolver (default SAMPLE_RESOLVER_ARGS), Nova on loopback, then `args`. */
export function agentCliArgs(options: {
  readonly socketPath: string;
  readonly novaPort: number;
  readonly resolverArgs?: readonly string[] | undefined;
  readonly args?: readonly string[] | undefined;
}): string[] {
  return [
    '--metadata-proxy-socket',
    options.socketPath,
    ...(options.resolverArgs ?? SAMPLE_RESOLVER_ARGS),
    '--nova-metadata-host',
    '127.0.0.1',
    '--nova-metadata-port',
    String(options.novaPort),
    ...(options.args ?? []),
  ];
}

/** The proxy's flags: `--bind host:port` (IPv6 in brackets), the identity (default the sample network), the agent's socket, then `args`. */
export function proxyCliArgs(options: {
  readonly socketPath: string;
  readonly host: string;
  readonly port: number;
  readonly identity?: readonly string[] | undefined;
  readonly args?: readonly string[] | undefined;
}): string[] {
  return [
    '--bind',
    formatHostPort(options.host, options.port),
    ...(options.identity ?? ['--network-id', SAMPLE_NETWORK]),
    '--metadata-proxy-socket',
    options.socketPath,
    ...(options.args ?? []),
  ];
}

/**
 * The metadata agent's CLI on `socketPath`, forwarding to Nova at 127.0.0.1:`novaPort`, with the
 * services' node flags (SERVICE_NODE_FLAGS, then `nodeArgs`); the secret goes in the environment.
 * Resolves once the socket accepts connections.
 */
export async function startAgentCli(
  options: CliOptions & {
    socketPath: string;
    novaPort: number;
    sharedSecret: string;
    /** The resolver's flags (default SAMPLE_RESOLVER_ARGS). */
    resolverArgs?: readonly string[];
    /** Don't wait for the socket (the caller knows when it is ready). */
    noWait?: boolean;
  },
): Promise<Service> {
  const agent = spawnService(options.name ?? 'agent', options.cli ?? CLI.agent, agentCliArgs(options), {
    ...options,
    nodeArgs: [...SERVICE_NODE_FLAGS, ...(options.nodeArgs ?? [])],
    env: serviceEnv(
      { ...options.env, NMP_METADATA_PROXY_SHARED_SECRET: options.sharedSecret },
      options.inheritEnv ? 'all' : false,
    ),
  });
  if (!options.noWait) await ready(agent, { path: options.socketPath }, options.startTimeoutMs);
  return agent;
}

/**
 * The proxy's CLI on `host`:`port` (127.0.0.1 and a free port by default) forwarding to the agent's
 * socket, with the services' node flags; its environment holds no secret. `identity` is the id flags
 * (default: the sample network). Waits until it accepts connections, except when wrapped (inside a
 * namespace the caller knows how to look).
 */
export async function startProxyCli(
  options: CliOptions & { socketPath: string; host?: string; port?: number; identity?: readonly string[] },
): Promise<Service & { port: number; url: string }> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const proxy = spawnService(
    options.name ?? 'proxy',
    options.cli ?? CLI.proxy,
    proxyCliArgs({ ...options, host, port }),
    {
      ...options,
      nodeArgs: [...SERVICE_NODE_FLAGS, ...(options.nodeArgs ?? [])],
      env: serviceEnv(options.env, options.inheritEnv ?? false),
    },
  );
  if (!options.wrap) await ready(proxy, { host, port }, options.startTimeoutMs);
  return Object.assign(proxy, { port, url: `http://${formatHostPort(host, port)}` });
}

// ---------------------------------------------------------------------------------------------------
// The chain

export interface ChainOptions {
  readonly t?: Owner | undefined;
  /** Where the socket (and outputs, with logToFiles) go; default a fresh temp dir, removed by stop(). */
  readonly dir?: string | undefined;
  /** Default: a fresh random one. */
  readonly sharedSecret?: string | undefined;
  /** Per process: name, cli, args, env, nodeArgs, wrap, node... */
  readonly nova?: (CliOptions & { port?: number; instancesFile?: string }) | undefined;
  readonly agent?: (CliOptions & { resolverArgs?: readonly string[] }) | undefined;
  /** false: no proxy. */
  readonly proxy?:
    | false
    | (CliOptions & { host?: string; port?: number; identity?: readonly string[] })
    | undefined;
  /** Pass the caller's NMP_* settings on to all three (see CliOptions.inheritEnv). */
  readonly inheritEnv?: boolean | undefined;
  /** Each process's stdout/stderr to `<dir>/<name>.out` instead of memory. */
  readonly logToFiles?: boolean | undefined;
}

export interface Chain {
  readonly dir: string;
  readonly socketPath: string;
  readonly sharedSecret: string;
  readonly nova: Service & { port: number; url: string };
  readonly agent: Service;
  /** The first proxy (undefined with proxy: false). */
  readonly proxy: (Service & { port: number; url: string }) | undefined;
  /** Every process started, in order. */
  readonly processes: Service[];
  /** Another proxy on the same agent (options as ChainOptions.proxy). */
  startProxy(
    options?: CliOptions & { host?: string; port?: number; identity?: readonly string[] },
  ): Promise<Service & { port: number; url: string }>;
  /** Stop every process in reverse order and remove a directory the chain made. */
  stop(): Promise<void>;
}

/** Nova, the agent (sample inventory) and a proxy (sample network), each its own process, all ready. */
export async function startChain(options: ChainOptions = {}): Promise<Chain> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'nmp-chain-'));
  const sharedSecret = options.sharedSecret ?? randomBytes(24).toString('base64url');
  const socketPath = join(dir, 'metadata_proxy');
  const processes: Service[] = [];
  const outFile = (name: string) => (options.logToFiles ? join(dir, `${name}.out`) : undefined);
  const stop = async () => {
    for (const p of [...processes].reverse()) await p.stop();
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  options.t?.after(stop);
  const track = <S extends Service>(s: S): S => {
    processes.push(s);
    return s;
  };
  try {
    const nova = track(
      await startNovaCli({
        inheritEnv: options.inheritEnv,
        ...options.nova,
        sharedSecret,
        outFile: outFile(options.nova?.name ?? 'nova'),
      }),
    );
    const agent = track(
      await startAgentCli({
        inheritEnv: options.inheritEnv,
        ...options.agent,
        socketPath,
        novaPort: nova.port,
        sharedSecret,
        outFile: outFile(options.agent?.name ?? 'agent'),
      }),
    );
    const startProxy: Chain['startProxy'] = async (p = {}) =>
      track(
        await startProxyCli({
          inheritEnv: options.inheritEnv,
          ...p,
          socketPath,
          outFile: outFile(p.name ?? 'proxy'),
        }),
      );
    const proxy = options.proxy === false ? undefined : await startProxy(options.proxy ?? {});
    return { dir, socketPath, sharedSecret, nova, agent, proxy, processes, startProxy, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
