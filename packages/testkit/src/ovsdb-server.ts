/*
 * Real ovsdb-server processes for tests: a standalone database, or a raft cluster of several members, each
 * in a temporary directory of its own, listening on a UNIX socket there and (when asked) on loopback TCP or
 * SSL. Processes run in the foreground as children of the test (never --detach), are stopped in t.after, and
 * restart on the same files and ports (to test reconnection).
 *
 * Debian's openvswitch-switch provides ovsdb-server and ovsdb-tool; ovn-central ships the OVN schemas.
 * Outside CI a missing binary skips the test with the package to install; as root (which is how CI runs)
 * it fails the test instead: there everything must run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { runCommand, sleep } from './netns.js';
import { freeLowPort } from './ports.js';

export const OVN_SB_SCHEMA = '/usr/share/ovn/ovn-sb.ovsschema';
export const OVN_NB_SCHEMA = '/usr/share/ovn/ovn-nb.ovsschema';
export const VSWITCH_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

/** Which Debian package provides a tool the tests use. */
const PACKAGE_OF: Readonly<Record<string, string>> = {
  'ovsdb-server': 'openvswitch-switch',
  'ovsdb-tool': 'openvswitch-common',
  'ovsdb-client': 'openvswitch-common',
  'ovs-vsctl': 'openvswitch-switch',
  'ovs-vswitchd': 'openvswitch-switch',
  'ovs-appctl': 'openvswitch-common',
  'ovn-northd': 'ovn-central',
  'ovn-nbctl': 'ovn-central',
  'ovn-sbctl': 'ovn-host',
  'ovn-controller': 'ovn-host',
  openssl: 'openssl',
  ethtool: 'ethtool',
};

function findTool(name: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Check that the tools (and files) a test needs exist. Missing: skip the test with what to install, or,
 * as root (CI), fail it. Returns false when skipped: `if (!requireTools(t, ['ovsdb-server'])) return;`
 */
export function requireTools(
  t: TestContext,
  tools: readonly string[],
  files: readonly string[] = [],
): boolean {
  const missing = [
    ...tools
      .filter((tool) => findTool(tool) === undefined)
      .map((tool) => `${tool} (${PACKAGE_OF[tool] ?? 'its package'})`),
    ...files.filter((f) => !existsSync(f)),
  ];
  if (missing.length === 0) return true;
  const message = `missing: ${missing.join(', ')}; apt-get install openvswitch-switch ovn-central ovn-host`;
  if (
    typeof process.getuid === 'function' &&
    process.getuid() === 0 &&
    process.env.NMP_SKIP_ROOT_TESTS !== '1'
  )
    throw new Error(`${message} (running as root, as CI does: these tests must run)`);
  t.skip(message);
  return false;
}

export interface SslFiles {
  readonly privateKey: string;
  readonly certificate: string;
  readonly caCert: string;
}

export interface OvsdbServerOptions {
  /** Schema file of the database (default: OVN Southbound). Ignored when `dbFile` exists already. */
  readonly schema?: string;
  /**
   * Also listen on loopback TCP: a port (0: any, read from the log; it is kept for restarts, but it may be
   * taken meanwhile: tests that restart use freeLowPort()).
   */
  readonly tcpPort?: number;
  /** Also listen on loopback SSL on this port with these files (give a fixed port: see startProcess). */
  readonly ssl?: { readonly port: number; readonly files: SslFiles };
  /** Use this existing database file (a cluster member's) instead of creating one. */
  readonly dbFile?: string;
  /** Directory for the socket, log, pid and control files (default: a new temporary directory). */
  readonly dir?: string;
  readonly extraArgs?: readonly string[];
}

export class OvsdbServer {
  readonly dir: string;
  readonly dbFile: string;
  readonly socketPath: string;
  readonly ctlPath: string;
  readonly logPath: string;
  #options: OvsdbServerOptions;
  #child: ChildProcess | undefined;
  #output = '';
  #tcpPort: number | undefined;
  #sslPort: number | undefined;
  readonly #ownDir: boolean;

  private constructor(options: OvsdbServerOptions, dir: string, ownDir: boolean) {
    this.#options = options;
    this.dir = dir;
    this.#ownDir = ownDir;
    this.dbFile = options.dbFile ?? join(dir, 'db.db');
    this.socketPath = join(dir, 'db.sock');
    this.ctlPath = join(dir, 'db.ctl');
    this.logPath = join(dir, 'db.log');
  }

  /** Create (if needed) and start a database server; stopped and removed in t.after. */
  static async start(t: TestContext | undefined, options: OvsdbServerOptions = {}): Promise<OvsdbServer> {
    const ownDir = options.dir === undefined;
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'nmp-ovsdb-'));
    const server = new OvsdbServer(options, dir, ownDir);
    t?.after(() => server.destroy());
    if (!existsSync(server.dbFile)) {
      await runCommand(undefined, 'ovsdb-tool', ['create', server.dbFile, options.schema ?? OVN_SB_SCHEMA]);
    }
    await server.startProcess();
    return server;
  }

  /** `unix:<socket>` */
  get unixRemote(): string {
    return `unix:${this.socketPath}`;
  }

  /** `tcp:127.0.0.1:<port>` (only with tcpPort). */
  get tcpRemote(): string {
    if (this.#tcpPort === undefined) throw new Error('this server has no TCP remote');
    return `tcp:127.0.0.1:${this.#tcpPort}`;
  }

  /** `ssl:127.0.0.1:<port>` (only with ssl). */
  get sslRemote(): string {
    if (this.#sslPort === undefined) throw new Error('this server has no SSL remote');
    return `ssl:127.0.0.1:${this.#sslPort}`;
  }

  get pid(): number | undefined {
    return this.running ? this.#child!.pid : undefined;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Output and log so far (for assertion messages). */
  diagnostics(): string {
    let log = '';
    try {
      log = readFileSync(this.logPath, 'utf8');
    } catch {}
    return `${this.#output}\n--- ${this.logPath} ---\n${log.slice(-8000)}`;
  }

  async startProcess(): Promise<void> {
    if (this.running) return;
    const o = this.#options;
    const logBefore = existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8').length : 0;
    const args = [
      this.dbFile,
      `--remote=punix:${this.socketPath}`,
      `--unixctl=${this.ctlPath}`,
      `--log-file=${this.logPath}`,
      `--pidfile=${join(this.dir, 'db.pid')}`,
      '--no-chdir',
      '-vconsole:off',
    ];
    // A restart reuses the port the first start got.
    const tcp = this.#tcpPort ?? o.tcpPort;
    if (tcp !== undefined) args.push(`--remote=ptcp:${tcp}:127.0.0.1`);
    if (o.ssl) {
      args.push(
        `--remote=pssl:${this.#sslPort ?? o.ssl.port}:127.0.0.1`,
        `--private-key=${o.ssl.files.privateKey}`,
        `--certificate=${o.ssl.files.certificate}`,
        `--ca-cert=${o.ssl.files.caCert}`,
      );
    }
    args.push(...(o.extraArgs ?? []));
    rmSync(this.socketPath, { force: true });
    this.#output = '';
    const child = spawn(findTool('ovsdb-server') ?? 'ovsdb-server', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OVS_RUNDIR: this.dir, OVS_LOGDIR: this.dir, OVS_DBDIR: this.dir },
    });
    child.stdout?.on('data', (c: Buffer) => (this.#output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (this.#output += c.toString()));
    this.#child = child;
    LIVE.add(child);
    child.once('exit', () => LIVE.delete(child));
    installExitHook();
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (!this.running) throw new Error(`ovsdb-server exited at start:\n${this.diagnostics()}`);
      const log = existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8').slice(logBefore) : '';
      const ports = [...log.matchAll(/listening on port (\d+)/g)].map((m) => Number(m[1]));
      // Only remotes on port 0 log the port they got.
      const wantPorts = (tcp === 0 ? 1 : 0) + (o.ssl?.port === 0 && this.#sslPort === undefined ? 1 : 0);
      if (existsSync(this.socketPath) && ports.length >= wantPorts) {
        // ovsdb-server opens remotes in the order given: TCP first, then SSL.
        if (tcp !== undefined) this.#tcpPort = tcp === 0 ? ports[0] : tcp;
        if (o.ssl) this.#sslPort = o.ssl.port === 0 ? ports[tcp !== undefined ? 1 : 0] : o.ssl.port;
        return;
      }
      if (Date.now() > deadline) throw new Error(`ovsdb-server did not start:\n${this.diagnostics()}`);
      await sleep(50);
    }
  }

  /** Stop the process (SIGTERM, then SIGKILL); the files stay for a restart. */
  async stopProcess(): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }

  /** Kill the process at once (SIGKILL: no goodbye to the clients). */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<void> {
    await this.stopProcess();
    await this.startProcess();
  }

  /** `ovs-appctl -t <ctl> ARGS` */
  async appctl(args: readonly string[]): Promise<string> {
    const r = await runCommand(undefined, 'ovs-appctl', ['-t', this.ctlPath, ...args]);
    return r.stdout;
  }

  /** `ovsdb-client transact <unix> JSON`, for tests that populate a database without our client. */
  async transact(database: string, operations: readonly object[]): Promise<unknown[]> {
    const r = await runCommand(undefined, 'ovsdb-client', [
      'transact',
      this.unixRemote,
      JSON.stringify([database, ...operations]),
    ]);
    const result = JSON.parse(r.stdout) as unknown[];
    const failed = result.find((x) => x !== null && typeof x === 'object' && 'error' in (x as object));
    if (failed) throw new Error(`transact failed: ${JSON.stringify(failed)}`);
    return result;
  }

  async destroy(): Promise<void> {
    await this.kill();
    if (this.#ownDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

// A runner that dies without its t.after hooks must not leave database servers behind.
const LIVE = new Set<ChildProcess>();
let hooked = false;
function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of LIVE) c.kill('SIGKILL');
  });
}

export interface OvsdbCluster {
  readonly members: readonly OvsdbServer[];
  /** Comma-separated TCP remotes of every member, for the client. */
  readonly remotes: string;
  /** The member that is leader now (asks each with cluster/status). */
  leader(database: string): Promise<OvsdbServer | undefined>;
}

/** A raft cluster (ovsdb-tool create-cluster / join-cluster) of `size` members on loopback TCP. */
export async function startOvsdbCluster(
  t: TestContext,
  options: { readonly schema?: string; readonly database?: string; readonly size?: number } = {},
): Promise<OvsdbCluster> {
  const size = options.size ?? 3;
  const schema = options.schema ?? OVN_SB_SCHEMA;
  const database = options.database ?? 'OVN_Southbound';
  const dir = mkdtempSync(join(tmpdir(), 'nmp-ovsdb-cluster-'));
  const members: OvsdbServer[] = [];
  t.after(async () => {
    await Promise.all(members.map((m) => m.destroy()));
    rmSync(dir, { recursive: true, force: true });
  });
  const raftPorts: number[] = [];
  for (let i = 0; i < size; i++) {
    let p = await freeLowPort();
    while (raftPorts.includes(p)) p = await freeLowPort();
    raftPorts.push(p);
  }
  const raft = (i: number) => `tcp:127.0.0.1:${raftPorts[i]}`;
  for (let i = 0; i < size; i++) {
    const memberDir = join(dir, `m${i + 1}`);
    mkdirSync(memberDir, { recursive: true });
    const dbFile = join(memberDir, 'db.db');
    if (i === 0) await runCommand(undefined, 'ovsdb-tool', ['create-cluster', dbFile, schema, raft(0)]);
    else await runCommand(undefined, 'ovsdb-tool', ['join-cluster', dbFile, database, raft(i), raft(0)]);
  }
  for (let i = 0; i < size; i++) {
    const memberDir = join(dir, `m${i + 1}`);
    members.push(
      await OvsdbServer.start(undefined, {
        dbFile: join(memberDir, 'db.db'),
        dir: memberDir,
        tcpPort: await freeLowPort(),
      }),
    );
  }
  const cluster: OvsdbCluster = {
    members,
    remotes: members.map((m) => m.tcpRemote).join(','),
    async leader(db = database) {
      for (const m of members) {
        if (!m.running) continue;
        const status = await m.appctl(['cluster/status', db]).catch(() => '');
        if (/^Role: leader$/m.test(status)) return m;
      }
      return undefined;
    },
  };
  // Wait until every member has joined and a leader is elected.
  const deadline = Date.now() + 30_000;
  for (;;) {
    let joined = 0;
    for (const m of members) {
      const status = await m.appctl(['cluster/status', database]).catch(() => '');
      if (/^Status: cluster member$/m.test(status)) joined++;
    }
    if (joined === size && (await cluster.leader(database))) return cluster;
    if (Date.now() > deadline)
      throw new Error(`cluster did not form:\n${members.map((m) => m.diagnostics()).join('\n')}`);
    await sleep(200);
  }
}

/**
 * A throw-away PKI made with openssl: a CA, a server and a client certificate (EC P-256, valid one day),
 * in `dir`. Test material only.
 */
export async function makeTestPki(
  dir: string,
): Promise<{ server: SslFiles; client: SslFiles; otherCaCert: string }> {
  const o = async (args: string[]) => {
    await runCommand(undefined, 'openssl', args);
  };
  const key = (name: string) =>
    o([
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-out',
      join(dir, `${name}.key`),
    ]);
  await key('ca');
  await o([
    'req',
    '-x509',
    '-new',
    '-key',
    join(dir, 'ca.key'),
    '-out',
    join(dir, 'ca.crt'),
    '-days',
    '1',
    '-subj',
    '/CN=nmp test CA',
  ]);
  await key('other-ca');
  await o([
    'req',
    '-x509',
    '-new',
    '-key',
    join(dir, 'other-ca.key'),
    '-out',
    join(dir, 'other-ca.crt'),
    '-days',
    '1',
    '-subj',
    '/CN=nmp other CA',
  ]);
  for (const name of ['server', 'client']) {
    await key(name);
    await o([
      'req',
      '-new',
      '-key',
      join(dir, `${name}.key`),
      '-out',
      join(dir, `${name}.csr`),
      '-subj',
      `/CN=nmp ${name}`,
    ]);
    await o([
      'x509',
      '-req',
      '-in',
      join(dir, `${name}.csr`),
      '-CA',
      join(dir, 'ca.crt'),
      '-CAkey',
      join(dir, 'ca.key'),
      '-CAcreateserial',
      '-out',
      join(dir, `${name}.crt`),
      '-days',
      '1',
    ]);
  }
  const files = (name: string): SslFiles => ({
    privateKey: join(dir, `${name}.key`),
    certificate: join(dir, `${name}.crt`),
    caCert: join(dir, 'ca.crt'),
  });
  return { server: files('server'), client: files('client'), otherCaCert: join(dir, 'other-ca.crt') };
}
