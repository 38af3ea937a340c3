/*
 * As root: the chain inside real network namespaces, the way a DHCP agent deploys it. Two "instance"
 * namespaces share an L2 segment (veths on a bridge) with a qdhcp-style namespace where the proxy listens
 * on 169.254.169.254:80 and [fe80::a9fe:a9fe%<dev>]:80. The agent and the development Nova run in the
 * root namespace on a UNIX socket and loopback only. Requests are made from inside the instance
 * namespaces, over IPv4 and over IPv6 link-local (looked up by the MAC in the EUI-64 address).
 * Everything is created with a unique prefix and removed afterwards, also when the test fails.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '@nmp/common';
import { InventoryResolver, MetadataAgent } from '@nmp/metadata-agent';
import { createNovaMetadataServer, parseInstances } from '@nmp/nova-metadata-dev';
import { NetnsLab, requireRoot, tempDir } from '@nmp/testkit';

const PROXY_CLI = fileURLToPath(new URL('../../packages/ns-metadata-proxy/dist/src/cli.js', import.meta.url));
const NETWORK = 'e2e0c0de-0000-4000-8000-000000000001';
const PROJECT = 'e2e0000000000000000000000000beef';
const VMS = [
  { tag: 'vm1', uuid: 'e2e00001-0000-4000-8000-000000000001', ip: '10.91.0.5', mac: 'fa:16:3e:91:00:05' },
  { tag: 'vm2', uuid: 'e2e00002-0000-4000-8000-000000000002', ip: '10.91.0.6', mac: 'fa:16:3e:91:00:06' },
];

test('qdhcp-style namespace: instances get their own metadata over IPv4 and IPv6 link-local', async (t) => {
  if (!requireRoot(t)) return;
  const dir = tempDir(t, 'nmp-e2e-');

  const nova = createNovaMetadataServer({
    sharedSecret: 'e2e-secret',
    instances: parseInstances(
      {
        instances: VMS.map((vm) => ({
          uuid: vm.uuid,
          project_id: PROJECT,
          name: vm.tag,
          fixed_ips: [vm.ip],
        })),
      },
      'e2e',
    ),
  });
  const novaAddress = await nova.listen(0, '127.0.0.1');
  t.after(() => nova.close());
  const socketPath = join(dir, 'metadata_proxy');
  const agent = new MetadataAgent({
    socketPath,
    socketMode: 0o644,
    backlog: 128,
    sharedSecret: 'e2e-secret',
    resolver: InventoryResolver.fromPorts(
      VMS.map((vm) => ({
        id: `port-${vm.tag}`,
        network_id: NETWORK,
        mac_address: vm.mac,
        fixed_ips: [{ ip_address: vm.ip }],
        device_id: vm.uuid,
        device_owner: 'compute:nova',
        project_id: PROJECT,
      })),
    ),
    logger: silentLogger(),
    maxBodySize: 65536,
    nova: { host: '127.0.0.1', port: novaAddress.port, protocol: 'http', timeoutMs: 5000 },
  });
  await agent.listen();
  t.after(() => agent.close(100));

  const lab = await NetnsLab.create(t);
  const dhcp = await lab.addNamespace('qdhcp');
  const bridge = await lab.addBridge(dhcp, 'br');
  await lab.addAddress(dhcp, bridge, '10.91.0.2/24');
  await lab.addAddress(dhcp, bridge, '169.254.169.254/32');
  await lab.addAddress(dhcp, bridge, 'fe80::a9fe:a9fe/64', { nodad: true });
  const vmNs: Record<string, { ns: string; dev: string }> = {};
  for (const vm of VMS) {
    const ns = await lab.addNamespace(vm.tag);
    const { dev1, dev2 } = await lab.addVethPair(dhcp, ns, { mac2: vm.mac });
    await lab.attachToBridge(dhcp, dev1, bridge);
    await lab.addAddress(ns, dev2, `${vm.ip}/24`);
    await lab.addRoute(ns, '169.254.169.254/32', { via: '10.91.0.2' });
    vmNs[vm.tag] = { ns, dev: dev2 };
  }
  for (const vm of VMS) await lab.waitForDad(vmNs[vm.tag]!.ns, vmNs[vm.tag]!.dev);

  const proxy = lab.spawn(dhcp, process.execPath, [
    PROXY_CLI,
    '--bind',
    '169.254.169.254:80',
    '--bind',
    `[fe80::a9fe:a9fe%${bridge}]:80`,
    '--network-id',
    NETWORK,
    '--metadata-proxy-socket',
    socketPath,
  ]);
  await proxy.waitForOutput(/ns-metadata-proxy listening/);

  for (const vm of VMS) {
    const { ns, dev } = vmNs[vm.tag]!;
    const v4 = await lab.httpGet(ns, 'http://169.254.169.254/openstack/latest/meta_data.json');
    assert.equal(v4.status, 200, `${vm.tag} over IPv4: ${v4.text}`);
    assert.equal((JSON.parse(v4.text) as { uuid: string }).uuid, vm.uuid);
    const v6 = await lab.httpGet(ns, {
      host: `fe80::a9fe:a9fe%${dev}`,
      port: 80,
      path: '/openstack/latest/meta_data.json',
    });
    assert.equal(v6.status, 200, `${vm.tag} over IPv6: ${v6.text}`);
    assert.equal((JSON.parse(v6.text) as { uuid: string }).uuid, vm.uuid);
    const id = await lab.httpGet(ns, 'http://169.254.169.254/latest/meta-data/instance-id');
    assert.equal(id.status, 200);
  }
  // The proxy saw each instance's own address: the log has both sources, v4 and link-local v6 (read after
  // the stop, which writes out the last batch of log lines).
  await proxy.stop();
  const out = proxy.output();
  for (const vm of VMS)
    assert.ok(out.includes(`"src":"${vm.ip}"`), `no request from ${vm.ip} in the proxy log`);
  assert.match(out, /"src":"fe80::f816:3eff:fe91:5"/);
});
