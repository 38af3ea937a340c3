/*
 * DHCP mode end to end, as root in real namespaces: a "qdhcp" namespace whose tap sits on a bridge with two
 * instance namespaces. `metadata-hooks dhcp add` puts 169.254.169.254 and fe80::a9fe:a9fe on the tap and
 * starts the proxy (as nobody); instances fetch their own metadata over IPv4 and IPv6 link-local through
 * proxy -> agent -> Nova. Then: unknown source -> 404, add twice harmless, killed proxy reported dead and
 * restarted, removal leaves no address, process or state behind; DAD failure falls back to IPv4 only.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isProcessAlive, NetnsLab, requireRoot, runCommand, sleep } from '@nmp/testkit';
import type { ProxyStatus } from '../src/proxy-status.js';
import { type Chain, eui64LinkLocal, startChain, withDiagnostics } from './chain-fixture.js';

const NET = '7d0c3a52-1f2e-4b3c-8d4e-5f6a7b8c9d01';
const INST_A = '11111111-aaaa-4aaa-8aaa-111111111111';
const INST_B = '22222222-bbbb-4bbb-8bbb-222222222222';
const MAC_A = 'fa:16:3e:00:00:0a';
const MAC_B = 'fa:16:3e:00:00:0b';

interface Topology {
  readonly dhcpNs: string;
  readonly tap: string;
  readonly vmA: string;
  readonly vmB: string;
  readonly devA: string;
  readonly devB: string;
}

/** switch namespace with a bridge; the qdhcp namespace and two VMs hang off it. */
async function buildNetwork(lab: NetnsLab, chain: Chain, network: string): Promise<Topology> {
  const sw = await lab.addNamespace('sw');
  const br = await lab.addBridge(sw, 'br');
  const dhcpNs = await lab.addNamespace(`${chain.dhcpPrefix}${network}`, { exactName: true });
  const vmA = await lab.addNamespace('vma');
  const vmB = await lab.addNamespace('vmb');
  const d = await lab.addVethPair(sw, dhcpNs, { dev1: lab.devName('sd'), dev2: lab.devName('tap') });
  const a = await lab.addVethPair(sw, vmA, { dev1: lab.devName('sa'), dev2: lab.devName('a'), mac2: MAC_A });
  const b = await lab.addVethPair(sw, vmB, { dev1: lab.devName('sb'), dev2: lab.devName('b'), mac2: MAC_B });
  for (const dev of [d.dev1, a.dev1, b.dev1]) await lab.attachToBridge(sw, dev, br);
  await lab.addAddress(dhcpNs, d.dev2, '10.251.0.2/24');
  await lab.addAddress(vmA, a.dev2, '10.251.0.11/24');
  await lab.addAddress(vmB, b.dev2, '10.251.0.12/24');
  // What DHCP option 121 tells an instance on an isolated network: the metadata address via the DHCP port.
  await lab.addRoute(vmA, '169.254.169.254/32', { via: '10.251.0.2' });
  await lab.addRoute(vmB, '169.254.169.254/32', { via: '10.251.0.2' });
  for (const [ns, dev] of [
    [dhcpNs, d.dev2],
    [vmA, a.dev2],
    [vmB, b.dev2],
  ] as const)
    await lab.waitForDad(ns, dev);
  return { dhcpNs, tap: d.dev2, vmA, vmB, devA: a.dev2, devB: b.dev2 };
}

async function status(chain: Chain): Promise<{ code: number; list: ProxyStatus[] }> {
  const r = await chain.hooks('status', '--json');
  return { code: r.code, list: JSON.parse(r.stdout) as ProxyStatus[] };
}

async function addresses(lab: NetnsLab, ns: string, dev: string): Promise<string> {
  return (await lab.ip(ns, ['-o', 'addr', 'show', 'dev', dev])).stdout;
}

test('DHCP namespace: IPv4 and IPv6 link-local metadata per instance, lifecycle, clean removal', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  let chain: Chain | undefined;
  await withDiagnostics(
    () => chain,
    async () => {
      chain = await startChain(
        t,
        lab,
        [
          { uuid: INST_A, name: 'vm-a' },
          { uuid: INST_B, name: 'vm-b' },
        ],
        [
          { networkId: NET, ip: '10.251.0.11', mac: MAC_A, deviceId: INST_A },
          { networkId: NET, ip: '10.251.0.12', mac: MAC_B, deviceId: INST_B },
          {
            networkId: NET,
            ip: '10.251.0.2',
            mac: 'fa:16:3e:00:00:02',
            deviceId: `dhcp-${NET}`,
            deviceOwner: 'network:dhcp',
          },
        ],
      );
      const topo = await buildNetwork(lab, chain, NET);

      const add = await chain.hooks('dhcp', 'add', NET, '--device', topo.tap, '--ipv6');
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stdout, /proxy started/);
      const addrs = await addresses(lab, topo.dhcpNs, topo.tap);
      assert.match(addrs, /inet 169\.254\.169\.254\/32/);
      assert.match(addrs, /inet6 fe80::a9fe:a9fe\/64/);

      // Each instance gets its own metadata, over IPv4 ...
      const a4 = await lab.httpGet(topo.vmA, 'http://169.254.169.254/openstack/latest/meta_data.json');
      assert.equal(a4.status, 200, a4.text);
      assert.equal(JSON.parse(a4.text).uuid, INST_A);
      const b4 = await lab.httpGet(topo.vmB, 'http://169.254.169.254/openstack/latest/meta_data.json');
      assert.equal(b4.status, 200, b4.text);
      assert.equal(JSON.parse(b4.text).uuid, INST_B);
      // ... and over IPv6 link-local (looked up by the MAC inside the EUI-64 source address).
      const a6 = await lab.httpGet(topo.vmA, {
        host: `fe80::a9fe:a9fe%${topo.devA}`,
        path: '/openstack/latest/meta_data.json',
      });
      assert.equal(a6.status, 200, a6.text);
      assert.equal(JSON.parse(a6.text).uuid, INST_A);
      const b6 = await lab.httpGet(topo.vmB, {
        host: `fe80::a9fe:a9fe%${topo.devB}`,
        path: '/openstack/latest/meta_data.json',
      });
      assert.equal(JSON.parse(b6.text).uuid, INST_B);
      assert.equal(eui64LinkLocal(MAC_B).startsWith('fe80::f816:3eff:fe'), true);

      // Spoofed identity headers from the instance change nothing.
      const spoof = await lab.httpGet(topo.vmB, 'http://169.254.169.254/openstack/latest/meta_data.json', {
        headers: {
          'X-Forwarded-For': '10.251.0.11',
          'X-Neutron-Network-ID': 'other',
          'X-Instance-ID': INST_A,
        },
      });
      assert.equal(JSON.parse(spoof.text).uuid, INST_B);

      // A source address that is not in the inventory: 404.
      await lab.addAddress(topo.vmA, topo.devA, '10.251.0.99/24');
      const unknown = await lab.httpGet(topo.vmA, {
        host: '169.254.169.254',
        path: '/openstack/latest/meta_data.json',
        localAddress: '10.251.0.99',
      });
      assert.equal(unknown.status, 404);

      // The proxy dropped to nobody after binding port 80, and status says so.
      let s = await status(chain);
      assert.equal(s.code, 0);
      assert.equal(s.list.length, 1);
      const st = s.list[0]!;
      assert.equal(st.kind, 'dhcp');
      assert.deepEqual(st.identity, { mode: 'network', id: NET });
      assert.equal(st.namespace, topo.dhcpNs);
      assert.equal(st.healthy, true, JSON.stringify(st));
      assert.equal(st.uid, 65534);
      assert.equal(st.gid, 65534);
      assert.deepEqual([...st.listening].sort(), ['169.254.169.254:80', '[fe80::a9fe:a9fe]:80']);
      const procStatus = readFileSync(`/proc/${st.pid}/status`, 'utf8');
      assert.match(procStatus, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
      assert.match(procStatus, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
      const pid1 = st.pid!;

      // add twice: same process, no duplicate address.
      const again = await chain.hooks('dhcp', 'add', NET, '--device', topo.tap, '--ipv6');
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /proxy unchanged \(pid (\d+)\)/);
      assert.equal(again.stdout.match(/pid (\d+)/)![1], String(pid1));
      const addrs2 = await addresses(lab, topo.dhcpNs, topo.tap);
      assert.equal(addrs2.match(/169\.254\.169\.254\/32/g)?.length, 1);
      assert.equal(addrs2.match(/fe80::a9fe:a9fe\/64/g)?.length, 1);

      // A killed proxy: status reports it dead (exit 3), add starts it again.
      process.kill(pid1, 'SIGKILL');
      for (let i = 0; i < 100 && isProcessAlive(pid1); i++) await sleep(20);
      s = await status(chain);
      assert.equal(s.code, 3);
      assert.equal(s.list[0]!.running, false);
      assert.equal(s.list[0]!.healthy, false);
      const human = await chain.hooks('status');
      assert.match(human.stdout, /DEAD/);
      const restart = await chain.hooks('dhcp', 'add', NET, '--device', topo.tap, '--ipv6');
      assert.equal(restart.code, 0, restart.stderr);
      assert.match(restart.stdout, /proxy started/);
      s = await status(chain);
      assert.equal(s.list[0]!.healthy, true);
      assert.notEqual(s.list[0]!.pid, pid1);
      const pid2 = s.list[0]!.pid!;
      const again4 = await lab.httpGet(topo.vmA, 'http://169.254.169.254/openstack/latest/meta_data.json');
      assert.equal(JSON.parse(again4.text).uuid, INST_A);

      // Removal: proxy gone, our addresses gone, no state left; the namespace itself is neutron's.
      const rm = await chain.hooks('dhcp', 'remove', NET);
      assert.equal(rm.code, 0, rm.stderr);
      assert.match(rm.stdout, /proxy terminated/);
      assert.equal(isProcessAlive(pid2), false);
      assert.deepEqual(await lab.pidsIn(topo.dhcpNs), []);
      const addrs3 = await addresses(lab, topo.dhcpNs, topo.tap);
      assert.doesNotMatch(addrs3, /169\.254\.169\.254|fe80::a9fe:a9fe/);
      assert.match(addrs3, /10\.251\.0\.2\/24/);
      assert.equal(
        existsSync(join(chain.stateDir, 'external', 'pids', `${NET}.pid.ns-metadata-proxy`)),
        false,
      );
      s = await status(chain);
      assert.deepEqual(s.list, []);
      assert.deepEqual(await lab.listeners(topo.dhcpNs), []);
      // Removing again is harmless.
      assert.equal((await chain.hooks('dhcp', 'remove', NET)).code, 0);

      await lab.cleanup();
      const left = await runCommand(undefined, 'ip', ['netns', 'list']);
      assert.doesNotMatch(left.stdout, new RegExp(lab.prefix));
    },
  );
});

test('DHCP namespace: DAD failure on fe80::a9fe:a9fe falls back to IPv4 only; a pre-existing address is kept', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  let chain: Chain | undefined;
  await withDiagnostics(
    () => chain,
    async () => {
      chain = await startChain(
        t,
        lab,
        [{ uuid: INST_A, name: 'vm-a' }],
        [{ networkId: NET, ip: '10.251.0.11', mac: MAC_A, deviceId: INST_A }],
      );
      const topo = await buildNetwork(lab, chain, NET);
      // "Another DHCP agent" already owns the metadata link-local address on this segment.
      await lab.addAddress(topo.vmB, topo.devB, 'fe80::a9fe:a9fe/64', { nodad: true });
      // And someone configured the IPv4 metadata address on the tap before us.
      await lab.addAddress(topo.dhcpNs, topo.tap, '169.254.169.254/32');

      const add = await chain.hooks('dhcp', 'add', NET, '--device', topo.tap, '--ipv6');
      assert.equal(add.code, 0, add.stderr);
      assert.match(
        add.stdout,
        /fe80::a9fe:a9fe not usable \(duplicate address detection failed\); serving IPv4 only/,
      );
      assert.doesNotMatch(await addresses(lab, topo.dhcpNs, topo.tap), /fe80::a9fe:a9fe/);
      const s = JSON.parse((await chain.hooks('status', '--json')).stdout) as ProxyStatus[];
      assert.deepEqual(s[0]!.listening, ['169.254.169.254:80']);
      assert.equal(s[0]!.healthy, true);
      const a4 = await lab.httpGet(topo.vmA, 'http://169.254.169.254/openstack/latest/meta_data.json');
      assert.equal(JSON.parse(a4.text).uuid, INST_A);

      assert.equal((await chain.hooks('dhcp', 'remove', NET)).code, 0);
      // Not ours: still there.
      assert.match(await addresses(lab, topo.dhcpNs, topo.tap), /169\.254\.169\.254\/32/);
    },
  );
});
