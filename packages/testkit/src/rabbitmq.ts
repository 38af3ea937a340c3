/*
 * A throwaway RabbitMQ node for one test file: Debian's rabbitmq-server started under its own node name
 * (`nmp<hex>@localhost`), with its AMQP and Erlang distribution ports below the ephemeral range (probed
 * free: a busy test suite holds thousands of ephemeral ports, see the brief), listening on 127.0.0.1 only,
 * and every file it writes (mnesia, logs, config, cookie) in a temp directory it owns. As root the node
 * runs as the `rabbitmq` user; otherwise as the current user.
 *
 * `startRabbitNode(t)` registers the cleanup with `t.after`: the node is stopped (SIGKILL of its process
 * group if `rabbitmqctl stop` does not finish), epmd is asked to exit when no node is left in it (it
 * refuses while another node uses it), and the directory is removed, also when the test failed.
 *
 *   const rabbit = await startRabbitNode(t);
 *   await rabbit.addUser('nmp', 'p@ss');
 *   const url = rabbit.url('nmp', 'p@ss');            // rabbit://nmp:p%40ss@127.0.0.1:<port>/
 *   await rabbit.stop(); await rabbit.start();         // a real broker restart, same port and data
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { runCommand, sleep } from './netns.js';
import { freeLowPort } from './ports.js';

const RABBIT_BIN = '/usr/lib/rabbitmq/bin';
const SERVER = join(RABBIT_BIN, 'rabbitmq-server');
const CTL = join(RABBIT_BIN, 'rabbitmqctl');

/** Why RabbitMQ tests cannot run here, or undefined. */
export function rabbitSkipReason(): string | undefined {
  if (!existsSync(SERVER) || !existsSync(CTL))
    return `RabbitMQ is not installed (${SERVER}; apt-get install rabbitmq-server)`;
  if (isRoot() && spawnSync('id', ['-u', 'rabbitmq'], { encoding: 'utf8' }).status !== 0)
    return 'the rabbitmq user does not exist';
  return undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Skip the test unless RabbitMQ can run. As root (CI) a missing RabbitMQ is a failure, not a skip: CI
 * must run every test. Returns false when skipped: `if (!requireRabbit(t)) return;`.
 */
export function requireRabbit(t: TestContext): boolean {
  const reason = rabbitSkipReason();
  if (reason === undefined) return true;
  if (isRoot()) throw new Error(`${reason}: running as root (as CI does), so this test must run`);
  t.skip(reason);
  return false;
}

export interface RabbitNode {
  readonly nodeName: string;
  readonly port: number;
  readonly distPort: number;
  /** The TLS listener's port (0 without `tls`). */
  readonly tlsPort: number;
  readonly dir: string;
  /** transport_url for this node (user and password percent-encoded). */
  url(user: string, password: string, vhost?: string): string;
  /** rabbitmqctl against this node; rejects on a non-zero exit. */
  ctl(args: readonly string[], timeoutMs?: number): Promise<string>;
  addUser(user: string, password: string, vhost?: string): Promise<void>;
  addVhost(vhost: string): Promise<void>;
  /** Stop the whole node (the AMQP port then refuses connections). */
  stop(): Promise<void>;
  /** Start it again (same ports, same data directory: users and durable things are kept). */
  start(): Promise<void>;
  /** The log of the node's start-up and stops (stdout/stderr), for failure messages. */
  output(): string;
  /** Stop for good and remove the directory (also registered with t.after). */
  cleanup(): Promise<void>;
}

export interface RabbitOptions {
  /** Extra lines for rabbitmq.conf. */
  readonly config?: readonly string[];
  /**
   * Also listen with TLS (on `tlsPort`), with these PEM files (copied into the node's directory).
   * `requireClientCert` makes the broker refuse clients without a certificate signed by `ca`.
   */
  readonly tls?: {
    readonly ca: string;
    readonly cert: string;
    readonly key: string;
    readonly requireClientCert?: boolean;
  };
  /** Plugins to enable (e.g. rabbitmq_auth_mechanism_ssl for EXTERNAL logins by certificate). */
  readonly plugins?: readonly string[];
}

export async function startRabbitNode(t?: TestContext, options: RabbitOptions = {}): Promise<RabbitNode> {
  let lastError: unknown;
  // A port probed free can still be taken before the node binds it: try again with new ports.
  for (let attempt = 0; attempt < 3; attempt++) {
    const node = await createNode(options);
    t?.after(() => node.cleanup());
    try {
      await node.start();
      return node;
    } catch (err) {
      lastError = err;
      await node.cleanup().catch(() => {});
    }
  }
  throw lastError;
}

async function createNode(options: RabbitOptions): Promise<RabbitNode> {
  const dir = mkdtempSync(join(tmpdir(), 'nmp-rabbit-'));
  try {
    return await prepareNode(dir, options);
  } catch (err) {
    // Nothing runs yet: only the directory to remove.
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function prepareNode(dir: string, options: RabbitOptions): Promise<RabbitNode> {
  const nodeName = `nmp${randomBytes(3).toString('hex')}@localhost`;
  // The CLI tools use distPort + 10000 for themselves: keep that below 32768 too.
  const distPort = await freeLowPort(15000, 21000);
  let port = await freeLowPort(22000, 25000);
  while (port === distPort) port = await freeLowPort(22000, 25000);
  const tlsLines: string[] = [];
  let tlsPort = 0;
  if (options.tls) {
    tlsPort = await freeLowPort(25000, 28000);
    for (const [name, from] of [
      ['ca.pem', options.tls.ca],
      ['cert.pem', options.tls.cert],
      ['key.pem', options.tls.key],
    ] as const)
      writeFileSync(join(dir, name), readFileSync(from), { mode: 0o600 });
    const verify = options.tls.requireClientCert === true;
    tlsLines.push(
      `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
      `ssl_options.cacertfile = ${join(dir, 'ca.pem')}`,
      `ssl_options.certfile = ${join(dir, 'cert.pem')}`,
      `ssl_options.keyfile = ${join(dir, 'key.pem')}`,
      `ssl_options.verify = ${verify ? 'verify_peer' : 'verify_none'}`,
      `ssl_options.fail_if_no_peer_cert = ${verify}`,
    );
  }
  const conf = [
    `listeners.tcp.default = 127.0.0.1:${port}`,
    'loopback_users = none',
    ...tlsLines,
    ...(options.config ?? []),
  ];
  writeFileSync(join(dir, 'rabbitmq.conf'), `${conf.join('\n')}\n`);
  writeFileSync(join(dir, 'enabled_plugins'), `[${(options.plugins ?? []).join(',')}].\n`);
  let uid: number | undefined;
  let gid: number | undefined;
  if (isRoot()) {
    uid = Number(spawnSync('id', ['-u', 'rabbitmq'], { encoding: 'utf8' }).stdout.trim());
    gid = Number(spawnSync('id', ['-g', 'rabbitmq'], { encoding: 'utf8' }).stdout.trim());
    for (const f of [
      '',
      'rabbitmq.conf',
      'enabled_plugins',
      ...(options.tls ? ['ca.pem', 'cert.pem', 'key.pem'] : []),
    ])
      chownSync(join(dir, f), uid, gid);
  }
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: dir,
    LANG: 'C.UTF-8',
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'pid'),
    // Erlang distribution on loopback only (it listens on every address otherwise).
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };
  const ids = uid !== undefined ? { uid, gid: gid! } : {};
  let child: ChildProcess | undefined;
  let out = '';
  let cleaned = false;

  const ctl = async (args: readonly string[], timeoutMs = 60_000): Promise<string> => {
    const r = await runCommand(
      undefined,
      isRoot() ? 'runuser' : CTL,
      isRoot()
        ? ['-u', 'rabbitmq', '--', 'env', ...envArgs(env), CTL, '-n', nodeName, ...args]
        : ['-n', nodeName, ...args],
      {
        timeoutMs,
        ...(isRoot() ? {} : { env }),
      },
    );
    return r.stdout;
  };

  const node: RabbitNode = {
    nodeName,
    port,
    distPort,
    tlsPort,
    dir,
    url: (user, password, vhost = '') =>
      `rabbit://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(vhost)}`,
    ctl,
    async addUser(user, password, vhost = '/') {
      await ctl(['add_user', user, password]);
      await ctl(['set_permissions', '-p', vhost, user, '.*', '.*', '.*']);
    },
    async addVhost(vhost) {
      await ctl(['add_vhost', vhost]);
    },
    async start() {
      if (child && child.exitCode === null) return;
      child = spawn(SERVER, [], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
      child.stdout?.on('data', (c: Buffer) => {
        out = (out + c.toString('utf8')).slice(-100_000);
      });
      child.stderr?.on('data', (c: Buffer) => {
        out = (out + c.toString('utf8')).slice(-100_000);
      });
      const started = child;
      const exited = new Promise<void>((resolve) => started.once('exit', () => resolve()));
      // `wait` polls for the pid file, then for the application (await_startup fails if the node is not up yet).
      const ready = ctl(['wait', join(dir, 'pid'), '--timeout', '60'], 90_000);
      const outcome = await Promise.race([
        ready.then(() => 'ready' as const),
        exited.then(() => 'exited' as const),
      ]).catch((err: unknown) => err);
      if (outcome !== 'ready') {
        const why = outcome === 'exited' ? 'exited during start-up' : String(outcome);
        killGroup(started);
        throw new Error(
          `RabbitMQ node ${nodeName} (port ${port}) did not start: ${why}\n${out.slice(-3000)}${logTail(dir)}`,
        );
      }
    },
    async stop() {
      const running = child;
      if (!running || running.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      await ctl(['stop'], 30_000).catch(() => {});
      const timer = setTimeout(() => killGroup(running), 15_000);
      await exited;
      clearTimeout(timer);
      // Whatever the node left in its group (erl_child_setup, inet_gethost) goes too.
      killGroup(running);
    },
    output: () => out,
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await node.stop().catch(() => {});
      if (child) killGroup(child);
      // epmd refuses to exit while another node is registered in it: safe when tests run in parallel.
      spawnSync('epmd', ['-kill'], { env: { ...env }, timeout: 5_000, stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return node;
}

function envArgs(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // gone
  }
}

function logTail(dir: string): string {
  try {
    const logs = join(dir, 'log');
    if (!existsSync(logs)) return '';
    return readdirSync(logs)
      .filter((f) => f.endsWith('.log'))
      .map((f) => `\n--- ${f} ---\n${readFileSync(join(logs, f), 'utf8').slice(-2000)}`)
      .join('');
  } catch {
    return '';
  }
}

/** Wait until `check` is true (polling every 50 ms), or throw after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
