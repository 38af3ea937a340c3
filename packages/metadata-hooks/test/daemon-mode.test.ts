/*
 * proxy_mode = daemon, as root: the hooks plumb addresses and rules as always but attach the namespace to
 * the metadata-proxy-daemon instead of starting a proxy. An instance gets its metadata over IPv4 and IPv6
 * link-local through the daemon; status lists the attachment with the daemon's worker (unprivileged);
 * switching a network between process and daemon mode never leaves two listeners fighting for the port;
 * remove detaches and deletes the addresses; l3 add/remove attach and detach the router namespace; an
 * unreachable daemon is a clear failure of add and of status.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NetnsLab as Lab, type NetnsLab, type NsChild, requireRoot, sleep } from '@nmp/testkit';
import type { ProxyStatus } from '../src/proxy-status.js';
import { type Chain, startChain, withDiagnostics } from './chain-fixture.js';

const DAEMON_CLI = fileURLToPath(new URL('../../../metadata-proxy-daemon/dist/src/cli.js', import.meta.url));
const NET = '3b1f0c2d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
const ROUTER = '9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d';
const INST = '33333333-cccc-4ccc-8ccc-333333333333';
const MAC = 'fa:16:3e:00:00:33';
const META = '/openstack/latest/meta_data.json';

async function startDaemon(lab: NetnsLab, chain: Chain): Promise<NsChild> {
  const d = lab.spawn(undefined, process.execPath, [
    DAEMON_CLI,
    '--state-path',
    chain.stateDir,
    '--metadata-proxy-socket',
    chain.socketPath,
    '--metadata-proxy-user',
    'nobody',
    '--namespace-check-interval',
    '1',
    '--log-level',
    'warn',
  ]);
  const control = join(chain.stateDir, 'nmp-metadata-proxy-daemon', 'control.sock');
  for (let i = 0; i < 100; i++) {
    const r = await chain.hooks('status', '--json', '--proxy-mode', 'daemon');
    if (!r.stdout.includes('not reachable')) return d;
    if (d.process.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`daemon did not answer on ${control}:\n${d.output()}`);
}

async function status(chain: Chain, ...extra: string[]): Promise<{ code: number; list: ProxyStatus[] }> {
  const r = await chain.hooks('status', '--json', ...extra);
  return { code: r.code, list: JSON.parse(r.stdout) as ProxyStatus[] };
}

test('daemon mode: hooks attach and detach through the daemon, status shows it, modes switch cleanly', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await Lab.create(t);
  let chain: Chain | undefined;
  let daemon: NsChild | undefined;
  await withDiagnostics(
    () => chain,
    async () => {
      chain = await startChain(
        t,
        lab,
        [{ uuid: INST, name: 'vm-d' }],
        [{ networkId: NET, ip: '10.252.0.11', mac: MAC, deviceId: INST }],
      );
      const dhcpNs = await lab.addNamespace(`${chain.dhcpPrefix}${NET}`, { exactName: true });
      const vm = await lab.addNamespace('vm');
      const { dev1: tap, dev2: vmDev } = await lab.addVethPair(dhcpNs, vm, {
        dev1: lab.devName('tap'),
        dev2: lab.devName('vm'),
        mac2: MAC,
      });
      await lab.addAddress(dhcpNs, tap, '10.252.0.2/24');
      await lab.addAddress(vm, vmDev, '10.252.0.11/24');
      await lab.addRoute(vm, '169.254.169.254/32', { via: '10.252.0.2' });
      await lab.waitForDad(dhcpNs, tap);
      await lab.waitForDad(vm, vmDev);
      daemon = await startDaemon(lab, chain);
      const daemonMode = ['--proxy-mode', 'daemon'];

      // Process mode first: a proxy process holds port 80.
      const first = await chain.hooks('dhcp', 'add', NET, '--device', tap);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /proxy started/);

      // Switch to daemon mode: the process is stopped, the daemon listens (IPv4 and IPv6 link-local).
      const add = await chain.hooks('dhcp', 'add', NET, '--device', tap, '--ipv6', ...daemonMode);
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stdout, /attached to the metadata proxy daemon/);
      assert.deepEqual(await lab.pidsIn(dhcpNs), [], 'no process left in the namespace');
      const v4 = await lab.httpGet(vm, `http://169.254.169.254${META}`);
      assert.equal(v4.status, 200, v4.text);
      assert.equal(JSON.parse(v4.text).uuid, INST);
      const v6 = await lab.httpGet(vm, { host: `fe80::a9fe:a9fe%${vmDev}`, path: META });
      assert.equal(v6.status, 200, v6.text);
      assert.equal(JSON.parse(v6.text).uuid, INST);

      const s = await status(chain, ...daemonMode);
      assert.equal(s.code, 0, JSON.stringify(s.list));
      const mine = s.list.find((x) => x.id === NET)!;
      assert.equal(mine.kind, 'dhcp');
      assert.equal(mine.proxy, 'daemon');
      assert.equal(mine.healthy, true);
      assert.equal(mine.uid, 65534, 'the serving worker runs as nobody');
      assert.deepEqual([...mine.listening].sort(), ['169.254.169.254:80', '[fe80::a9fe:a9fe]:80']);
      assert.ok(!s.list.some((x) => x.kind === 'daemon'), 'no attachment without a record');
      // Text form names the daemon.
      const text = await chain.hooks('status', ...daemonMode);
      assert.match(text.stdout, /\(metadata proxy daemon\): healthy; daemon worker pid \d+ uid 65534/);

      // The same add again is harmless.
      const again = await chain.hooks('dhcp', 'add', NET, '--device', tap, '--ipv6', ...daemonMode);
      assert.equal(again.code, 0, again.stderr);

      // A router namespace in daemon mode: rules by the hooks, listener by the daemon.
      const routerNs = await lab.addNamespace(`${chain.routerPrefix}${ROUTER}`, { exactName: true });
      const l3 = await chain.hooks('l3', 'add', ROUTER, '--no-ipv6', ...daemonMode);
      assert.equal(l3.code, 0, l3.stderr);
      assert.equal((await lab.listeners(routerNs, 9697)).length, 1);
      const withRouter = await status(chain, ...daemonMode);
      const r = withRouter.list.find((x) => x.id === ROUTER)!;
      assert.equal(r.kind, 'l3');
      assert.deepEqual(r.identity, { mode: 'router', id: ROUTER });
      assert.equal(r.healthy, true);
      const l3rm = await chain.hooks('l3', 'remove', ROUTER, ...daemonMode);
      assert.equal(l3rm.code, 0, l3rm.stderr);
      assert.match(l3rm.stdout, /detached from the daemon/);
      assert.deepEqual(await lab.listeners(routerNs, 9697), []);

      // Back to process mode and again to the daemon: one listener at a time.
      const back = await chain.hooks('dhcp', 'add', NET, '--device', tap);
      assert.equal(back.code, 0, back.stderr);
      assert.match(back.stdout, /proxy started/);
      assert.equal((await lab.pidsIn(dhcpNs)).length, 1);
      assert.ok(!(await status(chain, ...daemonMode)).list.some((x) => x.kind === 'daemon'));
      const toDaemon = await chain.hooks('dhcp', 'add', NET, '--device', tap, ...daemonMode);
      assert.equal(toDaemon.code, 0, toDaemon.stderr);
      assert.equal(JSON.parse((await lab.httpGet(vm, `http://169.254.169.254${META}`)).text).uuid, INST);

      // Remove: detached, addresses gone, nothing listed.
      const rm = await chain.hooks('dhcp', 'remove', NET, ...daemonMode);
      assert.equal(rm.code, 0, rm.stderr);
      assert.match(rm.stdout, /detached from the daemon/);
      assert.deepEqual(await lab.listeners(dhcpNs, 80), []);
      assert.doesNotMatch(
        (await lab.ip(dhcpNs, ['-o', 'addr', 'show', 'dev', tap])).stdout,
        /169\.254\.169\.254/,
      );
      const after = await status(chain, ...daemonMode);
      assert.deepEqual(after.list, []);

      // The daemon gone: add fails saying so, status reports it.
      await daemon.stop();
      const down = await chain.hooks('dhcp', 'add', NET, '--device', tap, ...daemonMode);
      assert.notEqual(down.code, 0);
      assert.match(down.stderr, /metadata proxy daemon not reachable.*nmp-metadata-proxy-daemon\.service/);
      const st = await status(chain, ...daemonMode);
      assert.equal(st.code, 3);
      assert.ok(st.list.some((x) => x.kind === 'daemon' && !x.healthy));
      await chain.hooks('dhcp', 'remove', NET, ...daemonMode);
    },
  );
});
