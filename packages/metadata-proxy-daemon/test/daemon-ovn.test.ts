/*
 * As root: the daemon serving ovnmeta-style namespaces (ML2/OVN). Two network namespaces, each with an
 * instance namespace on a veth, laid out as neutron's OVN metadata agent lays them out (169.254.169.254/32
 * and fe80::a9fe:a9fe/64 on the namespace end; the instance reaches it on its L2 segment). Both instances
 * have the SAME address, so only the network id the listener stamps tells them apart. One namespace is
 * attached in mode ovn through the CLI (`attach --ovn-network-id`), the other in mode network through the
 * control socket: the agent must see X-OVN-Network-ID (and no Neutron header) from the first and
 * X-Neutron-Network-ID from the second, over IPv4 and IPv6 link-local, and a restart must restore the OVN
 * attachment with its mode.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { NetnsLab, requireRoot } from '@nmp/testkit';
import { daemonClient } from '../src/protocol.js';
import {
  DAEMON_CLI,
  daemonFlags,
  type Port,
  readAttachmentsFile,
  startChain,
  startDaemon,
  waitForList,
} from './fixture.js';

const run = promisify(execFile);
const VM_IP = '10.251.0.11';
const META_IP = '10.251.0.2';
const META = '/openstack/latest/meta_data.json';

test('ovnmeta namespaces: mode ovn stamps X-OVN-Network-ID only, IPv4 and IPv6, and survives a restart', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const nets = await Promise.all(
    ['o', 'n'].map(async (tag, i) => {
      const metaNs = await lab.addNamespace(`meta${tag}`);
      const vmNs = await lab.addNamespace(`vm${tag}`);
      const mac = `fa:16:3e:51:00:1${i}`;
      const { dev1, dev2 } = await lab.addVethPair(metaNs, vmNs, { mac2: mac });
      await lab.addAddress(metaNs, dev1, `${META_IP}/24`);
      await lab.addAddress(metaNs, dev1, '169.254.169.254/32');
      await lab.addAddress(metaNs, dev1, 'fe80::a9fe:a9fe/64', { nodad: true });
      await lab.addAddress(vmNs, dev2, `${VM_IP}/24`);
      await lab.addRoute(vmNs, '169.254.169.254/32', { via: META_IP });
      await lab.waitForDad(vmNs, dev2);
      return {
        networkId: randomUUID(),
        instance: randomUUID(),
        metaNs,
        vmNs,
        metaDev: dev1,
        vmDev: dev2,
        mac,
      };
    }),
  );
  const [ovn, plain] = nets as [(typeof nets)[0], (typeof nets)[0]];
  const ports: Port[] = nets.map((n) => ({
    networkId: n.networkId,
    ip: VM_IP,
    instance: n.instance,
    mac: n.mac,
  }));
  const chain = await startChain(t, lab, ports);
  let daemon = await startDaemon(lab, chain);
  const uuid = async (n: typeof ovn, v6: boolean) => {
    const r = await lab.httpGet(
      n.vmNs,
      v6 ? { host: `fe80::a9fe:a9fe%${n.vmDev}`, port: 80, path: META } : `http://169.254.169.254${META}`,
    );
    assert.equal(r.status, 200, r.text);
    return (JSON.parse(r.text) as { uuid: string }).uuid;
  };
  try {
    const binds = (n: typeof ovn) => ['169.254.169.254:80', `[fe80::a9fe:a9fe%${n.metaDev}]:80`];
    const cli = await run(process.execPath, [
      DAEMON_CLI,
      ...daemonFlags(chain),
      'attach',
      '--namespace',
      ovn.metaNs,
      '--ovn-network-id',
      ovn.networkId,
      ...binds(ovn).flatMap((b) => ['--bind', b]),
    ]);
    assert.match(cli.stdout, new RegExp(`^${ovn.metaNs}: listening on `));
    await daemonClient.attach(chain.controlSocket, {
      id: plain.networkId,
      mode: 'network',
      namespace: plain.metaNs,
      binds: binds(plain),
    });
    const list = await daemonClient.list(chain.controlSocket);
    assert.deepEqual(
      list.attachments.map((a) => [a.namespace, a.mode, a.healthy]).sort(),
      [
        [ovn.metaNs, 'ovn', true],
        [plain.metaNs, 'network', true],
      ].sort(),
    );

    for (const v6 of [false, true]) {
      const before = chain.seen.length;
      assert.equal(await uuid(ovn, v6), ovn.instance);
      assert.equal(await uuid(plain, v6), plain.instance);
      const seen = chain.seen.slice(before);
      assert.deepEqual(
        seen.map((s) => [s.ovn, s.network, s.router]),
        [
          [ovn.networkId, undefined, undefined],
          [undefined, plain.networkId, undefined],
        ],
      );
      for (const s of seen)
        assert.equal(s.forwardedFor, v6 ? 'fe80::f816:3eff:fe51:' + (s.ovn ? '10' : '11') : VM_IP);
    }

    assert.deepEqual(
      readAttachmentsFile(chain)
        .attachments.map((a) => [a.namespace, (a as { mode?: string }).mode])
        .sort(),
      [
        [ovn.metaNs, 'ovn'],
        [plain.metaNs, 'network'],
      ].sort(),
    );
    await daemon.stop(15_000);
    daemon = await startDaemon(lab, chain);
    await waitForList(chain, (l) => l.daemon.healthy === 2);
    const before = chain.seen.length;
    assert.equal(await uuid(ovn, false), ovn.instance);
    assert.equal(chain.seen[before]?.ovn, ovn.networkId, 'restored with its mode');
  } catch (err) {
    if (err instanceof Error)
      err.message += `\n--- daemon ---\n${daemon.output().slice(-6000)}\n${chain.diagnostics()}`;
    throw err;
  }
});
