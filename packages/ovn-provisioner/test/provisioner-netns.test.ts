/*
 * As root: the provisioner against a real Southbound and a real local Open_vSwitch database, with the OVS
 * ends of the veths in a test "hypervisor" namespace (never the root one) and namespaces under a unique
 * prefix. Proxies are ns-metadata-proxy processes (proxy_mode = process); a recording stand-in agent on a
 * UNIX socket shows what they forward. Checked: the namespace, both veth ends (MAC, MTU, addresses), the
 * OVS port with iface-id, the proxy stamping X-OVN-Network-ID; networks of other chassis left alone;
 * addresses following neutron:cidrs; teardown when the last local VIF leaves; the resync at start (a stale
 * namespace removed, a right one adopted with its proxy untouched); and a broken namespace reported and
 * retried with back-off while the other networks are served.
 */
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { silentLogger } from '@nmp/common';
import { LocalOvs, OvnSouthbound } from '@nmp/ovn';
import {
  NetnsLab,
  OVN_SB_SCHEMA,
  OvsdbServer,
  requireRoot,
  requireTools,
  runCommand,
  sbOps,
  tempDir,
  until,
  VSWITCH_SCHEMA,
} from '@nmp/testkit';
import { vethNames } from '../src/desired-state.js';
import { OvnProvisioner } from '../src/provisioner.js';
import { ProcessLauncher } from '../src/proxy-launcher.js';

const NET1 = '5e1f0001-0000-4000-8000-000000000001';
const NET2 = '5e1f0002-0000-4000-8000-000000000002';
const NET3 = '5e1f0003-0000-4000-8000-000000000003';
const NET4 = '5e1f0004-0000-4000-8000-000000000004';
// (Device names use the first 10 characters of the id, as neutron's do: these differ there.)
const META_MAC = (i: number) => `fa:16:3e:5e:00:0${i}`;

interface World {
  lab: NetnsLab;
  hv: string;
  prefix: string;
  sb: OvsdbServer;
  ovsDb: OvsdbServer;
  dir: string;
  seen: IncomingHttpHeaders[];
  socketPath: string;
  ref(table: string, where: unknown[]): Promise<[string, string]>;
  /** The provisioners started in this world: stopped before its namespaces are removed. */
  readonly provisioners: { stop(): Promise<void> }[];
}

async function world(t: TestContext): Promise<World> {
  const lab = await NetnsLab.create(t);
  const hv = await lab.addNamespace('hv');
  const prefix = `${lab.prefix}-ovnmeta-`;
  const provisioners: World['provisioners'] = [];
  // Whatever the provisioner leaves under our prefix goes with the test, its proxies first. The
  // provisioners stop first: one still running would make a namespace again (NET4's retry did, and its
  // namespace outlived the run), as t.after hooks run in the order they were added.
  t.after(async () => {
    await Promise.allSettled(provisioners.map((x) => x.stop()));
    for (const ns of await namespaces(prefix)) {
      await killIn(ns);
      await runCommand(undefined, 'ip', ['netns', 'del', ns], { allowFailure: true });
    }
    rmSync(`/run/netns/${prefix}${NET4}`, { force: true });
  });
  const dir = tempDir(t, 'nmp-prov-');

  // The stand-in agent: records what the proxies forward.
  const seen: IncomingHttpHeaders[] = [];
  const socketPath = join(dir, 'metadata_proxy');
  const agent = createServer((req, res) => {
    seen.push(req.headers);
    res.end('ok');
  });
  await new Promise<void>((resolve) => agent.listen(socketPath, resolve));
  t.after(() => new Promise<void>((resolve) => agent.close(() => resolve())));

  const sb = await OvsdbServer.start(t);
  const ovsDb = await OvsdbServer.start(t, { schema: VSWITCH_SCHEMA });
  const vsctl = (args: string[]) =>
    runCommand(undefined, 'ovs-vsctl', [`--db=${ovsDb.unixRemote}`, '--no-wait', ...args]);
  await vsctl(['init']);
  await vsctl(['add-br', 'br-int', '--', 'set', 'Open_vSwitch', '.', 'external_ids:system-id=hv1']);

  const ref = async (table: string, where: unknown[]): Promise<[string, string]> => {
    const [r] = (await sb.transact('OVN_Southbound', [
      { op: 'select', table, where: [where], columns: ['_uuid'] },
    ])) as {
      rows: { _uuid: [string, string] }[];
    }[];
    return r!.rows[0]!._uuid;
  };
  await sb.transact('OVN_Southbound', [...sbOps.chassis('hv1'), ...sbOps.chassis('hv2')]);
  for (const [i, net] of [NET1, NET2, NET3, NET4].entries()) {
    await sb.transact('OVN_Southbound', [
      sbOps.network(net, i + 1, { uuidName: 'dp' }),
      sbOps.port({
        id: `meta-${i + 1}`,
        datapath: ['named-uuid', 'dp'],
        tunnelKey: 1,
        type: 'localport',
        mac: META_MAC(i + 1),
        ips: [`10.5${i}.0.2`],
        cidrs: `10.5${i}.0.2/24`,
        deviceId: `ovnmeta-${net}`,
        networkId: net,
        mtu: 1442,
      }),
    ]);
  }
  return { lab, hv, prefix, sb, ovsDb, dir, seen, socketPath, ref, provisioners };
}

async function vif(w: World, id: string, net: string, key: number, ips: string[], chassis: string) {
  const dp = await w.ref('Datapath_Binding', [
    'external_ids',
    'includes',
    ['map', [['name', `neutron-${net}`]]],
  ]);
  const ch = await w.ref('Chassis', ['name', '==', chassis]);
  await w.sb.transact('OVN_Southbound', [
    sbOps.port({
      id,
      datapath: dp,
      tunnelKey: key,
      mac: `fa:16:3e:77:00:${String(key).padStart(2, '0')}`,
      ips,
      deviceId: `inst-${id}`,
      projectId: 'p',
      networkId: net,
      chassis: ch,
    }),
  ]);
}

function provisioner(w: World) {
  const sb = new OvnSouthbound({
    remotes: w.sb.unixRemote,
    probeIntervalMs: 5000,
    chassisName: 'hv1',
    scope: 'chassis',
    index: false,
    localports: true,
    logger: silentLogger(),
    backoffMinMs: 50,
    backoffMaxMs: 200,
  });
  const ovs = new LocalOvs({ remote: w.ovsDb.unixRemote, logger: silentLogger(), full: true });
  const launcher = new ProcessLauncher({
    socketPath: w.socketPath,
    pidDir: join(w.dir, 'pids'),
    logDir: join(w.dir, 'logs'),
    killTimeoutMs: 2000,
  });
  const p = new OvnProvisioner({
    southbound: sb,
    ovs,
    launcher,
    namespacePrefix: w.prefix,
    hostNamespace: w.hv,
    logger: silentLogger(),
    retryMinMs: 200,
    retryMaxMs: 1600,
    statusFile: join(w.dir, 'status.json'),
  });
  sb.start();
  ovs.start();
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await p.close();
      await Promise.allSettled([sb.close(), ovs.close()]);
    })();
    return stopped;
  };
  w.provisioners.push({ stop });
  return { p, sb, ovs, launcher, stop };
}

/** Kill what runs in a namespace (the proxies this test made the provisioner start). */
async function killIn(ns: string): Promise<void> {
  const r = await runCommand(undefined, 'ip', ['netns', 'pids', ns], { allowFailure: true });
  for (const pid of r.stdout.split(/\s+/).filter((x) => /^\d+$/.test(x))) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {}
  }
}

async function namespaces(prefix: string): Promise<string[]> {
  const r = await runCommand(undefined, 'ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(prefix))
    .sort();
}

async function link(
  ns: string,
  dev: string,
): Promise<{ address: string; mtu: number; operstate: string; addrs: string[] }> {
  const l = JSON.parse(
    (await runCommand(undefined, 'ip', ['-n', ns, '-j', 'addr', 'show', 'dev', dev])).stdout,
  )[0];
  return {
    address: l.address,
    mtu: l.mtu,
    operstate: l.flags.includes('UP') ? 'up' : 'down',
    addrs: (l.addr_info as { local: string; prefixlen: number }[])
      .map((a) => `${a.local}/${a.prefixlen}`)
      .sort(),
  };
}

async function iface(w: World, name: string): Promise<string | undefined> {
  const r = await runCommand(
    undefined,
    'ovs-vsctl',
    [
      `--db=${w.ovsDb.unixRemote}`,
      '--no-wait',
      '--if-exists',
      'get',
      'Interface',
      name,
      'external_ids:iface-id',
    ],
    { allowFailure: true },
  );
  return r.code === 0 && r.stdout.trim() !== '' ? r.stdout.trim().replace(/^"|"$/g, '') : undefined;
}

test('provisioning, teardown, resync and a broken namespace, as neutron lays them out', async (t) => {
  if (!requireRoot(t)) return;
  if (
    !requireTools(
      t,
      ['ovsdb-server', 'ovsdb-tool', 'ovsdb-client', 'ovs-vsctl', 'ethtool'],
      [OVN_SB_SCHEMA, VSWITCH_SCHEMA],
    )
  )
    return;
  const w = await world(t);
  await vif(w, 'vm-1', NET1, 2, ['10.50.0.5', '2001:db8:50::5'], 'hv1');
  await vif(w, 'vm-2', NET2, 2, ['10.51.0.5'], 'hv1');
  await vif(w, 'vm-3', NET3, 2, ['10.52.0.5'], 'hv2');
  const one = provisioner(w);
  await one.p.start();

  const ns1 = `${w.prefix}${NET1}`;
  const ns2 = `${w.prefix}${NET2}`;
  assert.deepEqual(await namespaces(w.prefix), [ns1, ns2], 'NET3 has no VIF here');
  const [outer1, inner1] = vethNames(NET1);
  const inside = await link(ns1, inner1);
  assert.equal(inside.address, META_MAC(1));
  assert.equal(inside.mtu, 1442);
  assert.equal(inside.operstate, 'up');
  assert.deepEqual(
    inside.addrs,
    ['10.50.0.2/24', '169.254.169.254/32', 'fe80::a9fe:a9fe/64', 'fe80::f816:3eff:fe5e:1/64'].sort(),
  );
  const outside = await link(w.hv, outer1);
  assert.equal(outside.mtu, 1442);
  assert.equal(outside.operstate, 'up');
  assert.equal(await iface(w, outer1), 'meta-1', 'plugged with iface-id = the metadata port');
  // NET2's VIF has no IPv6: no IPv6 addresses (the kernel's own link-local of the MAC aside).
  const inside2 = await link(ns2, vethNames(NET2)[1]);
  assert.deepEqual(
    inside2.addrs.filter((a) => !a.startsWith('fe80::f816')),
    ['10.51.0.2/24', '169.254.169.254/32'],
  );

  // The proxy listens on both addresses and stamps X-OVN-Network-ID (and nothing the client sent).
  const listening = (await w.lab.listeners(ns1, 80)).join('\n');
  assert.match(listening, /169\.254\.169\.254:80/);
  assert.match(listening, /\[fe80::a9fe:a9fe\]%tap5e1f0001-01:80/);
  const r = await w.lab.httpGet(ns1, 'http://169.254.169.254/openstack', {
    headers: { 'X-OVN-Network-ID': NET3, 'X-Neutron-Network-ID': NET3 },
  });
  assert.equal(r.status, 200);
  const got = w.seen.at(-1)!;
  assert.equal(got['x-ovn-network-id'], NET1);
  assert.equal(got['x-neutron-network-id'], undefined);
  assert.equal(one.p.status().find((s) => s.network === NET1)?.state, 'provisioned');

  // A second subnet with a local VIF: its metadata address is added.
  await w.sb.transact('OVN_Southbound', [
    {
      op: 'mutate',
      table: 'Port_Binding',
      where: [['logical_port', '==', 'meta-2']],
      mutations: [
        ['external_ids', 'delete', ['set', ['neutron:cidrs']]],
        ['external_ids', 'insert', ['map', [['neutron:cidrs', '10.51.0.2/24 10.51.1.2/24']]]],
      ],
    },
  ]);
  await vif(w, 'vm-2b', NET2, 3, ['10.51.1.7'], 'hv1');
  await until(
    'the second subnet',
    async () => (await link(ns2, vethNames(NET2)[1])).addrs.includes('10.51.1.2/24'),
    15_000,
  );

  // The last VIF of NET1 leaves this chassis: everything of NET1 goes.
  const pid1 = one.launcher.running(NET1, ns1);
  assert.ok(pid1);
  await w.sb.transact('OVN_Southbound', [sbOps.bind('vm-1', await w.ref('Chassis', ['name', '==', 'hv2']))]);
  await until('NET1 torn down', async () => !(await namespaces(w.prefix)).includes(ns1), 15_000);
  await one.p.idle();
  assert.equal(await iface(w, outer1), undefined, 'OVS port removed');
  assert.equal(
    (await runCommand(undefined, 'ip', ['-n', w.hv, 'link', 'show', outer1], { allowFailure: true })).code !==
      0,
    true,
  );
  await until(
    'the proxy gone',
    () => !existsSync(`/proc/${pid1}/stat`) || one.launcher.running(NET1, ns1) === undefined,
    15_000,
  );

  // Restart: a stale namespace under our prefix is removed, NET2's is adopted (same proxy process).
  const pid2 = one.launcher.running(NET2, ns2);
  await one.stop();
  const stale = `${w.prefix}5e1f00ff-0000-4000-8000-0000000000ff`;
  await runCommand(undefined, 'ip', ['netns', 'add', stale]);
  // And a broken namespace for NET4: the name is taken by a plain file, so `ip netns add` cannot work.
  writeFileSync(`/run/netns/${w.prefix}${NET4}`, '');
  await vif(w, 'vm-4', NET4, 2, ['10.53.0.5'], 'hv1');
  const two = provisioner(w);
  await two.p.start();
  assert.ok(!(await namespaces(w.prefix)).includes(stale), 'stale namespace removed');
  assert.equal(two.launcher.running(NET2, ns2), pid2, 'adopted: the running proxy is kept');
  const broken = () => two.p.status().find((s) => s.network === NET4);
  assert.equal(broken()?.state, 'failed');
  assert.match(broken()?.error ?? '', /netns|File exists|namespace/i);
  // Retried with back-off (200, 400, 800 ms ...), the others unaffected.
  await until('a few retries', () => (broken()?.attempts ?? 0) >= 3, 10_000);
  assert.equal(two.p.status().find((s) => s.network === NET2)?.state, 'provisioned');
  const r2 = await w.lab.httpGet(ns2, 'http://169.254.169.254/');
  assert.equal(r2.status, 200);
  // Repaired: the next retry provisions it.
  rmSync(`/run/netns/${w.prefix}${NET4}`, { force: true });
  await until('NET4 provisioned', () => broken()?.state === 'provisioned', 10_000);
  assert.ok((await namespaces(w.prefix)).includes(`${w.prefix}${NET4}`));
});
