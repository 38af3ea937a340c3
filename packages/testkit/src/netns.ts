/*
 * A harness for tests that need real network namespaces (root only).
 *
 * Everything a test creates goes through one NetnsLab: namespaces and devices get a unique prefix
 * (`mdt` + 4 hex digits by default, so parallel test files and leftovers of a crashed run never collide),
 * veth pairs are created directly inside namespaces (never in the root namespace), and child processes
 * started inside a namespace are tracked. `lab.cleanup()` (registered with `t.after` by `NetnsLab.create(t)`)
 * kills those children, then every other process still living in our namespaces, runs the callbacks given
 * to `lab.defer()`, and deletes the namespaces, which takes their devices, addresses, routes and firewall
 * rules with them. A process-exit hook repeats the namespace part synchronously in case the runner dies.
 *
 * The root namespace is never touched: every `ip` command here names a namespace (`ip -n NS ...`).
 *
 *   test('reaches the proxy', async (t) => {
 *     if (!requireRoot(t)) return;
 *     const lab = await NetnsLab.create(t);
 *     const router = await lab.addNamespace('rtr');
 *     const vm = await lab.addNamespace('vm');
 *     const { dev1, dev2 } = await lab.addVethPair(router, vm);
 *     await lab.addAddress(router, dev1, '10.90.0.1/24');
 *     await lab.addAddress(vm, dev2, '10.90.0.5/24');
 *     await lab.addRoute(vm, 'default', { via: '10.90.0.1' });
 *     const server = lab.spawn(router, process.execPath, ['server.js']);
 *     await lab.waitForListen(router, 80);
 *     const res = await lab.httpGet(vm, 'http://10.90.0.1/');
 *   });
 */
import { type ChildProcess, execFile, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';

/** Linux limit on interface names (IFNAMSIZ - 1). */
export const MAX_DEVICE_NAME = 15;

let cachedSkipReason: string | null | undefined;

/**
 * Why root namespace tests cannot run here, or undefined when they can. Reasons: NMP_SKIP_ROOT_TESTS=1,
 * not running as uid 0, `ip` missing, or `ip netns add` failing (no CAP_SYS_ADMIN, no /run/netns).
 * The probe (create and delete one namespace) runs once per process.
 */
export function rootSkipReason(): string | undefined {
  if (process.env.NMP_SKIP_ROOT_TESTS === '1') return 'root tests disabled (NMP_SKIP_ROOT_TESTS=1)';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    return 'needs root to create network namespaces (run as root, as CI does)';
  if (cachedSkipReason !== undefined) return cachedSkipReason ?? undefined;
  const probe = `mdtprobe${randomBytes(2).toString('hex')}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 });
  if (add.error || add.status !== 0) {
    const why = add.error ? add.error.message : (add.stderr || '').trim() || `exit ${add.status}`;
    cachedSkipReason = `'ip netns add' does not work here: ${why}`;
    return cachedSkipReason;
  }
  spawnSync('ip', ['netns', 'del', probe], { timeout: 10_000 });
  cachedSkipReason = null;
  return undefined;
}

/**
 * Skip the test (with the reason) unless namespace tests can run. Returns false when skipped; the caller
 * must then return: `if (!requireRoot(t)) return;`.
 */
export function requireRoot(t: TestContext): boolean {
  const reason = rootSkipReason();
  if (reason === undefined) return true;
  t.skip(reason);
  return false;
}

/** A fresh prefix: `base` + 4 random hex digits, e.g. `mdt3fa9`. */
export function uniquePrefix(base = 'mdt'): string {
  return `${base}${randomBytes(2).toString('hex')}`;
}

export interface ExecResult {
  readonly code: number;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ExecOptions {
  /** Kill the command after this long (default 30 s). */
  readonly timeoutMs?: number;
  /** Resolve with a non-zero exit instead of rejecting. */
  readonly allowFailure?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin. */
  readonly input?: string;
}

export class ExecError extends Error {
  constructor(
    readonly command: readonly string[],
    readonly result: ExecResult,
  ) {
    super(
      `command failed (${result.signal ?? `exit ${result.code}`}): ${command.join(' ')}` +
        (result.stderr.trim() ? `\n${result.stderr.trim()}` : ''),
    );
    this.name = 'ExecError';
  }
}

/** Run a command (in the root namespace when `ns` is undefined, else via `ip netns exec ns`). */
export function runCommand(
  ns: string | undefined,
  file: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  const argv = ns === undefined ? [file, ...args] : ['ip', 'netns', 'exec', ns, file, ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      {
        timeout: options.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
        ...(options.env ? { env: options.env } : {}),
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
        if (e && typeof e.code !== 'number' && !e.signal) {
          reject(e); // spawn failure (ENOENT ...)
          return;
        }
        const result: ExecResult = {
          code: e ? (typeof e.code === 'number' ? e.code : -1) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        };
        if (e && !options.allowFailure) reject(new ExecError(argv, result));
        else resolve(result);
      },
    );
    child.stdin?.on('error', () => {}); // the command may exit without reading its input
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

export interface HttpRequestSpec {
  /** Host to connect to; an IPv6 link-local address carries its zone: `fe80::a9fe:a9fe%eth0`. */
  readonly host: string;
  readonly port?: number;
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  /** Source address to bind before connecting (must exist in the namespace). */
  readonly localAddress?: string;
  readonly body?: string;
}

export interface HttpOptions {
  /** Overall limit for connect + response (default 10 s). */
  readonly timeoutMs?: number;
  /** Extra fields merged into the request when a URL string is given. */
  readonly localAddress?: string;
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  readonly method?: string;
}

export interface HttpResult {
  readonly status: number;
  /** Lower-cased header names; repeated headers joined by node's rules. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  /** The body as UTF-8. */
  readonly text: string;
}

/** The client could not get a response: `code` is node's error code (ECONNREFUSED, ETIMEDOUT, ...). */
export class HttpGetError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpGetError';
  }
}

// Runs inside the namespace: one request, result as one JSON line on stdout.
const HTTP_CLIENT = `
const http = require('node:http');
const spec = JSON.parse(process.argv[1]);
const timeoutMs = spec.timeoutMs;
delete spec.timeoutMs;
const body = spec.body; delete spec.body;
const done = (o) => { process.stdout.write(JSON.stringify(o) + '\\n', () => process.exit(0)); };
const req = http.request({ ...spec, agent: false }, (res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => done({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders,
    body: Buffer.concat(chunks).toString('base64') }));
  res.on('error', (e) => done({ error: { code: e.code || 'ERESPONSE', message: e.message } }));
});
// An overall limit: req.setTimeout only starts once connected, and a dropped SYN never connects.
setTimeout(() => req.destroy(Object.assign(new Error('timed out after ' + timeoutMs + ' ms'), { code: 'ETIMEDOUT' })), timeoutMs).unref();
req.on('error', (e) => done({ error: { code: e.code || 'EREQUEST', message: e.message } }));
req.end(body);
`;

/**
 * One HTTP request from inside namespace `ns` (a child `node` run with `ip netns exec`). A URL string works
 * for ordinary hosts; use the object form for a zoned IPv6 link-local host. Rejects with HttpGetError when
 * no response arrives (refused, reset, timeout).
 */
export async function httpInNamespace(
  ns: string,
  target: string | HttpRequestSpec,
  options: HttpOptions = {},
): Promise<HttpResult> {
  let spec: HttpRequestSpec;
  if (typeof target === 'string') {
    const u = new URL(target);
    spec = {
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port === '' ? 80 : Number(u.port),
      path: `${u.pathname}${u.search}`,
    };
  } else spec = target;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const request = {
    method: options.method ?? spec.method ?? 'GET',
    host: spec.host,
    port: spec.port ?? 80,
    path: spec.path ?? '/',
    headers: { ...(spec.headers ?? {}), ...(options.headers ?? {}) },
    ...(spec.localAddress || options.localAddress
      ? { localAddress: options.localAddress ?? spec.localAddress }
      : {}),
    ...(spec.body !== undefined ? { body: spec.body } : {}),
    timeoutMs,
  };
  const r = await runCommand(ns, process.execPath, ['-e', HTTP_CLIENT, JSON.stringify(request)], {
    timeoutMs: timeoutMs + 10_000,
    allowFailure: true,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let parsed: {
    status?: number;
    headers?: Record<string, string | string[]>;
    rawHeaders?: string[];
    body?: string;
    error?: { code: string; message: string };
  };
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new HttpGetError(
      'ECLIENT',
      `http client in ${ns} produced no result (exit ${r.code}): ${r.stderr.trim().slice(0, 500)}`,
    );
  }
  if (parsed.error)
    throw new HttpGetError(parsed.error.code, `${parsed.error.code}: ${parsed.error.message}`);
  const body = Buffer.from(parsed.body ?? '', 'base64');
  return {
    status: parsed.status ?? 0,
    headers: parsed.headers ?? {},
    rawHeaders: parsed.rawHeaders ?? [],
    body,
    text: body.toString('utf8'),
  };
}

/** A child process running inside a namespace, with its output kept for diagnostics. */
export interface NsChild {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly namespace: string | undefined;
  /** stdout + stderr so far (last 1 MiB). */
  output(): string;
  /** Resolves when the output matches, rejects on exit or timeout (default 10 s) with the output so far. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code/signal (immediately when already exited). */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 3 s); resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnInNsOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

function wrapChild(cp: ChildProcess, ns: string | undefined): NsChild {
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (c: Buffer) => {
    out += c.toString('utf8');
    if (out.length > 1 << 20) out = out.slice(-(1 << 20));
    for (const w of waiters) w();
  };
  cp.stdout?.on('data', onData);
  cp.stderr?.on('data', onData);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    cp.once('exit', (code, signal) => {
      exit = { code, signal };
      // Let buffered output arrive before waiters see the exit.
      setImmediate(() => {
        for (const w of waiters) w();
        resolve(exit!);
      });
    });
    cp.once('error', (err) => {
      out += `\n[spawn error] ${err.message}\n`;
      exit = { code: -1, signal: null };
      for (const w of waiters) w();
      resolve(exit);
    });
  });
  const child: NsChild = {
    process: cp,
    pid: cp.pid ?? -1,
    namespace: ns,
    output: () => out,
    waitForOutput(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(pattern);
          if (m) {
            cleanup();
            resolve(m);
          } else if (exit) {
            cleanup();
            reject(
              new Error(
                `process ${child.pid} exited (${exit.signal ?? exit.code}) before ${pattern}:\n${out}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from ${child.pid}:\n${out}`),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    exited: () => exitPromise,
    async stop(graceMs = 3_000) {
      if (exit || cp.pid === undefined) return;
      cp.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!exit) cp.kill('SIGKILL');
      }, graceMs);
      await exitPromise;
      clearTimeout(timer);
    },
  };
  return child;
}

export interface LabOptions {
  /** Name prefix for namespaces and devices (default: `uniquePrefix('mdt')`). At most 8 characters. */
  readonly prefix?: string;
}

export interface VethOptions {
  /** Device name in the first namespace (default `<prefix><n>a`). */
  readonly dev1?: string;
  /** Device name in the second namespace (default `<prefix><n>b`). */
  readonly dev2?: string;
  readonly mtu?: number;
  /** MAC of the first / second end (set before the link comes up, so the EUI-64 link-local follows it). */
  readonly mac1?: string;
  readonly mac2?: string;
}

/**
 * Cleanup registry and builder for namespaces, veths, addresses, routes and processes. Names are
 * `<prefix>-<tag>` for namespaces and `<prefix><tag>` (<= 15 characters) for devices.
 */
export class NetnsLab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly children: NsChild[] = [];
  private readonly deferred: (() => unknown)[] = [];
  private vethCount = 0;
  private cleaned = false;

  constructor(options: LabOptions = {}) {
    this.prefix = options.prefix ?? uniquePrefix('mdt');
    if (!/^[a-z][a-z0-9]{0,7}$/.test(this.prefix))
      throw new Error(`prefix '${this.prefix}': 1-8 lower-case letters/digits, starting with a letter`);
    liveLabs.add(this);
    installExitHook();
  }

  /** A lab whose cleanup runs in `t.after` (even when the test fails). */
  static async create(t?: TestContext, options: LabOptions = {}): Promise<NetnsLab> {
    const lab = new NetnsLab(options);
    t?.after(() => lab.cleanup());
    return lab;
  }

  /** Full namespace name for a tag: `<prefix>-<tag>`. */
  nsName(tag: string): string {
    return `${this.prefix}-${tag}`;
  }

  /** A device name `<prefix><tag>`, checked against the 15-character limit. */
  devName(tag: string): string {
    const name = `${this.prefix}${tag}`;
    if (name.length > MAX_DEVICE_NAME)
      throw new Error(`device name '${name}' is longer than ${MAX_DEVICE_NAME} characters`);
    return name;
  }

  /** Namespaces this lab created or adopted, in creation order. */
  get namespaceNames(): readonly string[] {
    return [...this.namespaces];
  }

  /**
   * Create namespace `<prefix>-<tag>` (or exactly `name` when `{ exactName: true }`; it must still start
   * with the prefix so that leftovers are recognisable), bring its loopback up and register it for deletion.
   */
  async addNamespace(tag: string, options: { exactName?: boolean } = {}): Promise<string> {
    const name = options.exactName ? tag : this.nsName(tag);
    if (!name.startsWith(this.prefix))
      throw new Error(`namespace '${name}' does not start with ${this.prefix}`);
    await runCommand(undefined, 'ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await this.ip(name, ['link', 'set', 'lo', 'up']);
    return name;
  }

  /** Register a namespace created by someone else (e.g. the code under test) for deletion at cleanup. */
  adoptNamespace(name: string): void {
    if (!this.namespaces.includes(name)) this.namespaces.push(name);
  }

  /** `ip -n ns ARGS` (throws ExecError on failure). */
  ip(ns: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    return runCommand(undefined, 'ip', ['-n', ns, ...args], options);
  }

  /**
   * A veth pair with one end in each namespace, both ends up. Created inside ns1 with its peer placed in ns2,
   * so it never appears in the root namespace.
   */
  async addVethPair(
    ns1: string,
    ns2: string,
    options: VethOptions = {},
  ): Promise<{ dev1: string; dev2: string }> {
    const n = this.vethCount++;
    const dev1 = options.dev1 ?? this.devName(`${n}a`);
    const dev2 = options.dev2 ?? this.devName(`${n}b`);
    for (const d of [dev1, dev2])
      if (d.length > MAX_DEVICE_NAME) throw new Error(`device name '${d}' is longer than ${MAX_DEVICE_NAME}`);
    await this.ip(ns1, ['link', 'add', dev1, 'type', 'veth', 'peer', 'name', dev2, 'netns', ns2]);
    if (options.mac1) await this.ip(ns1, ['link', 'set', dev1, 'address', options.mac1]);
    if (options.mac2) await this.ip(ns2, ['link', 'set', dev2, 'address', options.mac2]);
    if (options.mtu) {
      await this.ip(ns1, ['link', 'set', dev1, 'mtu', String(options.mtu)]);
      await this.ip(ns2, ['link', 'set', dev2, 'mtu', String(options.mtu)]);
    }
    await this.ip(ns1, ['link', 'set', dev1, 'up']);
    await this.ip(ns2, ['link', 'set', dev2, 'up']);
    return { dev1, dev2 };
  }

  /** A Linux bridge `<prefix><tag>` in `ns`, up (an L2 segment joining several veth ends). */
  async addBridge(ns: string, tag: string): Promise<string> {
    const name = this.devName(tag);
    await this.ip(ns, ['link', 'add', name, 'type', 'bridge']);
    await this.ip(ns, ['link', 'set', name, 'up']);
    return name;
  }

  /** Enslave `dev` to `bridge` (both in `ns`). */
  async attachToBridge(ns: string, dev: string, bridge: string): Promise<void> {
    await this.ip(ns, ['link', 'set', dev, 'master', bridge]);
  }

  /** Add `cidr` to `dev` in `ns`. `nodad` skips IPv6 duplicate address detection (address usable at once). */
  async addAddress(ns: string, dev: string, cidr: string, options: { nodad?: boolean } = {}): Promise<void> {
    await this.ip(ns, ['addr', 'add', cidr, 'dev', dev, ...(options.nodad ? ['nodad'] : [])]);
  }

  /** Add a route in `ns`: `dest` is a CIDR or `default`; IPv6 is detected from the addresses. */
  async addRoute(
    ns: string,
    dest: string,
    options: { via?: string; dev?: string; ipv6?: boolean } = {},
  ): Promise<void> {
    const v6 = options.ipv6 ?? (dest.includes(':') || (options.via?.includes(':') ?? false));
    await this.ip(ns, [
      ...(v6 ? ['-6'] : []),
      'route',
      'add',
      dest,
      ...(options.via ? ['via', options.via] : []),
      ...(options.dev ? ['dev', options.dev] : []),
    ]);
  }

  /** Set a sysctl inside the namespace (e.g. `net.ipv4.ip_forward`, `1`). */
  async sysctl(ns: string, key: string, value: string): Promise<void> {
    await runCommand(ns, 'sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  /**
   * Wait until no address on `dev` is `tentative` (IPv6 DAD finished). Returns the addresses that ended
   * `dadfailed`. Default limit 10 s.
   */
  async waitForDad(ns: string, dev: string, timeoutMs = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.ip(ns, ['-6', '-o', 'addr', 'show', 'dev', dev]);
      const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
      const failed = lines.filter((l) => /\bdadfailed\b/.test(l)).map((l) => l.split(/\s+/)[3] ?? l);
      if (!lines.some((l) => /\btentative\b/.test(l) && !/\bdadfailed\b/.test(l))) return failed;
      if (Date.now() > deadline) throw new Error(`DAD on ${ns}/${dev} not finished after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** Run a command inside `ns` (or the root namespace when `ns` is undefined). */
  exec(
    ns: string | undefined,
    file: string,
    args: readonly string[],
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    return runCommand(ns, file, args, options);
  }

  /**
   * Start a long-running process inside `ns` (`ip netns exec`, which execs, so the pid is the program's own).
   * It is stopped at cleanup (SIGTERM, SIGKILL after 3 s).
   */
  spawn(
    ns: string | undefined,
    file: string,
    args: readonly string[],
    options: SpawnInNsOptions = {},
  ): NsChild {
    const argv = ns === undefined ? [file, ...args] : ['ip', 'netns', 'exec', ns, file, ...args];
    const spawnOptions: SpawnOptions = {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
    };
    const cp = spawn(argv[0]!, argv.slice(1), spawnOptions);
    const child = wrapChild(cp, ns);
    this.children.push(child);
    return child;
  }

  /** HTTP request from inside `ns`; see httpInNamespace. */
  httpGet(ns: string, target: string | HttpRequestSpec, options: HttpOptions = {}): Promise<HttpResult> {
    return httpInNamespace(ns, target, options);
  }

  /** TCP sockets listening inside `ns` as `ss -Hltnp` lines, optionally only those on `port`. */
  async listeners(ns: string, port?: number): Promise<string[]> {
    const r = await runCommand(ns, 'ss', ['-Hltnp', ...(port !== undefined ? [`sport = :${port}`] : [])]);
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  /** Wait until something listens on TCP `port` inside `ns` (default limit 10 s). */
  async waitForListen(ns: string, port: number, timeoutMs = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = await this.listeners(ns, port);
      if (l.length > 0) return l;
      if (Date.now() > deadline)
        throw new Error(`nothing listens on ${ns} port ${port} after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** Pids of processes whose network namespace is `ns`. */
  async pidsIn(ns: string): Promise<number[]> {
    const r = await runCommand(undefined, 'ip', ['netns', 'pids', ns], { allowFailure: true });
    return r.stdout
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
  }

  /** Run `fn` at cleanup, before the namespaces go (last registered runs first). */
  defer(fn: () => unknown): void {
    this.deferred.push(fn);
  }

  /**
   * Remove everything: deferred callbacks (errors collected), tracked children, any other process in our
   * namespaces, then the namespaces. Safe to call twice. Throws an AggregateError after doing all it can
   * when something could not be removed.
   */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    const errors: unknown[] = [];
    for (const fn of this.deferred.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    await Promise.all(this.children.splice(0).map((c) => c.stop().catch((err) => errors.push(err))));
    for (const ns of [...this.namespaces].reverse()) {
      try {
        await killAllIn(ns);
        const r = await runCommand(undefined, 'ip', ['netns', 'del', ns], { allowFailure: true });
        if (r.code !== 0 && !/No such file|not found|Cannot remove/i.test(r.stderr))
          errors.push(new Error(`ip netns del ${ns}: ${r.stderr.trim()}`));
      } catch (err) {
        errors.push(err);
      }
    }
    this.namespaces.length = 0;
    liveLabs.delete(this);
    if (errors.length > 0) throw new AggregateError(errors, `netns lab ${this.prefix}: cleanup incomplete`);
  }
}

async function killAllIn(ns: string): Promise<void> {
  const pidsOf = async () => {
    const r = await runCommand(undefined, 'ip', ['netns', 'pids', ns], { allowFailure: true });
    return r.stdout
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
  };
  let pids = await pidsOf();
  if (pids.length === 0) return;
  for (const p of pids) signal(p, 'SIGTERM');
  const deadline = Date.now() + 3_000;
  while (pids.length > 0 && Date.now() < deadline) {
    await sleep(100);
    pids = await pidsOf();
  }
  for (const p of pids) signal(p, 'SIGKILL');
  if (pids.length > 0) await sleep(200);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** True when `pid` exists and is not a zombie (an exited child not yet reaped counts as gone). */
export function isProcessAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 (state) follows the parenthesised command name, which may itself contain spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// Last resort when the test runner exits without running t.after (crash, process.exit): kill what lives in
// our namespaces and delete them, synchronously.
const liveLabs = new Set<NetnsLab>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const lab of liveLabs) {
      for (const ns of lab.namespaceNames) {
        const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 });
        for (const p of (r.stdout ?? '').split(/\s+/).filter((s) => /^\d+$/.test(s)))
          signal(Number(p), 'SIGKILL');
        spawnSync('ip', ['netns', 'del', ns], { timeout: 5_000 });
      }
    }
  });
}
