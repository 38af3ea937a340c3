#!/usr/bin/env node
// `npm run bench:rss -- --baseline DIR`: the resident memory of the programs that do not serve requests
// (the OVN provisioner, the hooks, the daemon's CLI), this build tree against another built tree, measured
// alternately round by round so the machine's load falls on both alike. What a program loads and never
// uses shows here first: a package pulled in through a barrel costs its whole module graph.
//   - short commands (`--version`, `--help`, `metadata-hooks status`): VmRSS and VmHWM read from
//     /proc/self/status at the process's exit (a preload of a few lines, the same for both trees);
//   - as root, `metadata-hooks dhcp add` (addresses and a proxy started in a qdhcp-style namespace the
//     benchmark creates, through NetnsLab, and removes afterwards) and `dhcp remove`: VmRSS and VmHWM at exit;
//   - `ovn-metadata-provisioner` started against a test Southbound and a local Open_vSwitch database
//     (real ovsdb-server processes, two networks, no VIF on this chassis, so nothing is provisioned):
//     VmRSS and VmHWM 2 s after its `running` line.
// Every program runs as the release's wrappers and units run it: this node with the services' node flags.
// Options: --baseline DIR (a built checkout to compare with; without it only this tree is measured),
//          --rounds N (default 5).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SERVICE_NODE_FLAGS } from '@nmp/common';
import { NetnsLab, OvsdbServer, runCommand, sbOps, VSWITCH_SCHEMA } from '@nmp/testkit';
import { fmt, machineInfo, mdTable, median, memoryOf, ROOT, requireBuilt, sleep } from './index.js';

const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write('usage: npm run bench:rss [-- --baseline DIR] [--rounds 5]\n');
  process.exit(0);
}
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) {
  process.stderr.write('bench:rss: --rounds must be an integer 1-50\n');
  process.exit(2);
}
requireBuilt();

const trees = [{ name: 'this tree', root: ROOT }];
if (values.baseline) trees.unshift({ name: 'baseline', root: resolve(values.baseline) });
const cli = (root: string, pkg: string): string => join(root, 'packages', pkg, 'dist/src/cli.js');

/** VmRSS and VmHWM (KiB) of one command; `code`: its exit status (short commands). */
interface Reading {
  rssKb: number | undefined;
  hwmKb: number | undefined;
  code?: number | null;
}

interface Env {
  sb: OvsdbServer;
  ovs: OvsdbServer;
  hooksState: string;
  dhcp: { lab: NetnsLab; prefix: string; device: string } | undefined;
}

const work = mkdtempSync(join(tmpdir(), 'nmp-bench-rss-'));
const PRELOAD = join(work, 'rss-at-exit.mjs');
writeFileSync(
  PRELOAD,
  // Written by the child itself when it exits: a short command is gone before anyone could read /proc.
  "import { readFileSync, writeFileSync } from 'node:fs';\n" +
    "const out = process.env.RSS_PROBE_OUT;\nif (out) process.on('exit', () => writeFileSync(out, readFileSync('/proc/self/status', 'utf8')));\n",
);

const kb = (status: string, field: string): number =>
  Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1]);

/** Run a short command to its end; its VmRSS and VmHWM at exit (KiB). */
function atExit(script: string, args: string[]): Promise<Reading> {
  const out = join(work, `status-${process.hrtime.bigint()}`);
  return new Promise<Reading>((done, fail) => {
    const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, '--import', PRELOAD, script, ...args], {
      env: { ...process.env, RSS_PROBE_OUT: out },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.once('exit', (code) => {
      try {
        const status = readFileSync(out, 'utf8');
        rmSync(out, { force: true });
        done({ rssKb: kb(status, 'VmRSS'), hwmKb: kb(status, 'VmHWM'), code });
      } catch {
        fail(
          new Error(`${script} ${args.join(' ')}: no status at exit (exit ${code}): ${stderr.slice(-2000)}`),
        );
      }
    });
  });
}

/** The provisioner, started against the test databases: its memory 2 s after it says it is running. */
async function provisionerRunning(root: string, env: Env): Promise<Reading> {
  const dir = mkdtempSync(join(work, 'prov-'));
  const args = [
    '--state-path',
    dir,
    '--ovn-sb-connection',
    env.sb.unixRemote,
    '--ovs-ovsdb-connection',
    env.ovs.unixRemote,
    // Nothing of anyone else's: the provisioner removes namespaces under its prefix that it does not serve.
    '--namespace-prefix',
    `nmpbench${process.pid}-`,
    '--proxy-mode',
    'process',
  ];
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, cli(root, 'ovn-provisioner'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (c: Buffer): void => {
    output += c.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const deadline = Date.now() + 30_000;
    while (!/ovn-metadata-provisioner running/.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`the provisioner did not come up:\n${output.slice(-3000)}`);
      await sleep(50);
    }
    await sleep(2000);
    const m = memoryOf(child.pid!);
    return { rssKb: m.rssKb, hwmKb: m.hwmKb };
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

async function databases(): Promise<{ sb: OvsdbServer; ovs: OvsdbServer }> {
  const sb = await OvsdbServer.start(undefined);
  const ovs = await OvsdbServer.start(undefined, { schema: VSWITCH_SCHEMA });
  const vsctl = (args: string[]) =>
    runCommand(undefined, 'ovs-vsctl', [`--db=${ovs.unixRemote}`, '--no-wait', ...args]);
  await vsctl(['init']);
  await vsctl(['add-br', 'br-int', '--', 'set', 'Open_vSwitch', '.', 'external_ids:system-id=hv1']);
  await sb.transact('OVN_Southbound', [...sbOps.chassis('hv1'), ...sbOps.chassis('hv2')]);
  for (const [i, net] of [
    '11111111-2222-4333-8444-555555555501',
    '11111111-2222-4333-8444-555555555502',
  ].entries())
    await sb.transact('OVN_Southbound', [
      sbOps.network(net, i + 1, { uuidName: 'dp' }),
      sbOps.port({
        id: `meta-${i + 1}`,
        datapath: ['named-uuid', 'dp'],
        tunnelKey: 1,
        type: 'localport',
        mac: `fa:16:3e:00:00:0${i + 1}`,
        ips: [`10.5${i}.0.2`],
        cidrs: `10.5${i}.0.2/24`,
        deviceId: `ovnmeta-${net}`,
        networkId: net,
        mtu: 1442,
      }),
    ]);
  return { sb, ovs };
}

const DHCP_NETWORK = '11111111-2222-4333-8444-5555555555aa';

/** As root: a namespace named as the hooks expect (prefix + network id) with a veth pair for the DHCP port. */
async function dhcpNamespace(): Promise<Env['dhcp']> {
  if (process.getuid?.() !== 0) return undefined;
  const lab = new NetnsLab();
  const prefix = `${lab.prefix}-q`;
  const ns = await lab.addNamespace(`${prefix}${DHCP_NETWORK}`, { exactName: true });
  const device = lab.devName('t');
  await lab.ip(ns, ['link', 'add', device, 'type', 'veth', 'peer', 'name', lab.devName('p')]);
  await lab.ip(ns, ['link', 'set', device, 'up']);
  await lab.ip(ns, ['link', 'set', lab.devName('p'), 'up']);
  return { lab, prefix, device };
}

/** `dhcp add` (the proxy started) then `dhcp remove`, each to its end, in the benchmark's namespace. */
async function dhcpAddRemove(root: string, env: Env): Promise<Reading[]> {
  const dhcp = env.dhcp!;
  const state = mkdtempSync(join(work, 'dhcp-'));
  const common = ['--state-path', state, '--dhcp-namespace-prefix', dhcp.prefix];
  try {
    const add = await atExit(cli(root, 'metadata-hooks'), [
      'dhcp',
      'add',
      DHCP_NETWORK,
      '--device',
      dhcp.device,
      ...common,
    ]);
    const remove = await atExit(cli(root, 'metadata-hooks'), ['dhcp', 'remove', DHCP_NETWORK, ...common]);
    if (add.code !== 0 || remove.code !== 0)
      throw new Error(`metadata-hooks dhcp add/remove exited ${add.code}/${remove.code}`);
    return [add, remove];
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

interface Case {
  key: string;
  /** The row's command, or one per row when a case measures several. */
  what: string | string[];
  /** Only as root. */
  root?: boolean;
  run(root: string, env: Env): Promise<Reading | Reading[]>;
}

const CASES: Case[] = [
  {
    key: 'prov-version',
    what: 'ovn-metadata-provisioner --version',
    run: (r) => atExit(cli(r, 'ovn-provisioner'), ['--version']),
  },
  {
    key: 'prov-help',
    what: 'ovn-metadata-provisioner --help',
    run: (r) => atExit(cli(r, 'ovn-provisioner'), ['--help']),
  },
  {
    key: 'prov-running',
    what: 'ovn-metadata-provisioner running (test Southbound)',
    run: (r, env) => provisionerRunning(r, env),
  },
  {
    key: 'hooks-version',
    what: 'metadata-hooks --version',
    run: (r) => atExit(cli(r, 'metadata-hooks'), ['--version']),
  },
  {
    key: 'hooks-status',
    what: 'metadata-hooks status (nothing plumbed)',
    run: (r, env) => atExit(cli(r, 'metadata-hooks'), ['status', '--state-path', env.hooksState]),
  },
  {
    key: 'hooks-dhcp',
    what: ['metadata-hooks dhcp add (proxy started)', 'metadata-hooks dhcp remove'],
    root: true,
    run: (r, env) => dhcpAddRemove(r, env),
  },
  {
    key: 'daemon-version',
    what: 'metadata-proxy-daemon --version',
    run: (r) => atExit(cli(r, 'metadata-proxy-daemon'), ['--version']),
  },
];

const started = new Date();
const load = [readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')];
const env: Env = {
  ...(await databases()),
  hooksState: mkdtempSync(join(work, 'hooks-')),
  dhcp: await dhcpNamespace(),
};
if (!env.dhcp) process.stderr.write('bench:rss: not root, so no metadata-hooks dhcp add/remove\n');
const cases = CASES.filter((c) => !c.root || env.dhcp);
/** results[case][tree] = [[{rssKb, hwmKb}] per row of the case] */
const results = new Map<string, Reading[][][]>(cases.map((c) => [c.key, trees.map(() => [])]));
try {
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      // Every other round the other tree goes first.
      const order = round % 2 === 0 ? trees.map((_, i) => i) : trees.map((_, i) => i).reverse();
      for (const i of order) {
        const r = await c.run(trees[i]!.root, env);
        results.get(c.key)![i]!.push(Array.isArray(r) ? r : [r]);
      }
    }
    process.stderr.write(`round ${round + 1}/${rounds} done\n`);
  }
} finally {
  await env.sb.destroy();
  await env.ovs.destroy();
  await env.dhcp?.lab.cleanup();
  rmSync(work, { recursive: true, force: true });
}
load.push(readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '));

const header = ['command', ...trees.flatMap((t) => [`${t.name} VmRSS MB`, `${t.name} VmHWM MB`])];
if (trees.length === 2) header.push('VmRSS after / before');
const rows = cases.flatMap((c) =>
  [c.what].flat().map((what, part) => {
    const per = results.get(c.key)!.map((runs) => ({
      rss: median(runs.map((r) => r[part]?.rssKb)),
      hwm: median(runs.map((r) => r[part]?.hwmKb)),
    }));
    const row = [what, ...per.flatMap((p) => [fmt.mb(p.rss), fmt.mb(p.hwm)])];
    if (per.length === 2) row.push(fmt.ratio(per[1]!.rss / per[0]!.rss));
    return row;
  }),
);
const m = machineInfo();
process.stdout.write(
  `npm run bench:rss${values.baseline ? ` -- --baseline ${values.baseline}` : ''} --rounds ${rounds}\n` +
    `${started.toISOString().slice(0, 16).replace('T', ' ')} UTC; ${m.nproc} cores ${m.model}, ${m.memoryGiB} GiB, kernel ${m.kernel}, node ${m.node}; ` +
    `load average ${load[0]} before, ${load[1]} after; medians of ${rounds} runs per cell\n\n` +
    `${mdTable(
      header,
      rows,
      header.map((_, i) => (i === 0 ? 'l' : 'r')),
    )}\n`,
);
