/*
 * As root, the whole drop-in chain of an ML2/OVS node: instance namespace -> our ns-metadata-proxy (in a
 * qdhcp-style namespace on 169.254.169.254:80 and [fe80::a9fe:a9fe]:80, and in a qrouter-style namespace
 * behind the REDIRECT to :9697) -> our metadata agent started with stock Debian neutron.conf +
 * metadata_agent.ini and nothing else -> a real RabbitMQ -> neutron-server's own MetadataRpcCallback
 * (python3-neutron) -> the development Nova. Requests are made from inside the instance namespaces over
 * IPv4, IPv6 link-local (looked up by MAC) and through the router; the filters neutron received are the
 * ones neutron's own agent sends. Everything is created with a unique prefix and removed afterwards.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createNovaMetadataServer, parseInstances } from '@nmp/nova-metadata-dev';
import {
  NetnsLab,
  requireNeutronPython,
  requireRabbit,
  requireRoot,
  startNeutronRpcServer,
  startRabbitNode,
  tempDir,
  waitUntil,
} from '@nmp/testkit';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROXY_CLI = join(ROOT, 'packages/ns-metadata-proxy/dist/src/cli.js');
const AGENT_CLI = join(ROOT, 'packages/metadata-agent/dist/src/cli.js');
const FIXTURES = join(ROOT, 'packages/metadata-agent/test/fixtures');

const NET_A = 'e2e0aaaa-0000-4000-8000-00000000000a';
const NET_B = 'e2e0bbbb-0000-4000-8000-00000000000b';
const ROUTER = 'e2e0cccc-0000-4000-8000-0000000000cc';
const PROJECT = 'e2e00000000000000000000000000rpc';
const SECRET = 'e2e-rpc-secret';
const VM1 = {
  tag: 'vm1',
  uuid: 'e2e10001-0000-4000-8000-000000000001',
  ip: '10.94.0.5',
  mac: 'fa:16:3e:94:00:05',
};
const VM2 = {
  tag: 'vm2',
  uuid: 'e2e10002-0000-4000-8000-000000000002',
  ip: '10.95.0.7',
  mac: 'fa:16:3e:95:00:07',
};
const OWNERS = [
  'network:router_interface',
  'network:ha_router_replicated_interface',
  'network:router_interface_distributed',
];

function neutronPort(
  id: string,
  net: string,
  mac: string,
  ip: string,
  device: string,
  owner = 'compute:nova',
) {
  return {
    id,
    network_id: net,
    mac_address: mac,
    fixed_ips: [{ subnet_id: `sub-${id}`, ip_address: ip }],
    device_id: device,
    device_owner: owner,
    project_id: PROJECT,
    tenant_id: PROJECT,
  };
}

test('instance -> proxy -> agent (stock files) -> RabbitMQ -> neutron RPC -> Nova: IPv4, link-local IPv6, router', async (t) => {
  if (!requireRoot(t) || !requireRabbit(t) || !requireNeutronPython(t)) return;
  const dir = tempDir(t, 'nmp-e2e-rpc-');

  const rabbit = await startRabbitNode(t);
  await rabbit.addUser('neutron', 'rpc-e2e-pw!');
  const url = rabbit.url('neutron', 'rpc-e2e-pw!');
  const server = await startNeutronRpcServer(t, {
    transportUrl: url,
    ports: [
      neutronPort('p-vm1', NET_A, VM1.mac, VM1.ip, VM1.uuid),
      neutronPort('p-vm2', NET_B, VM2.mac, VM2.ip, VM2.uuid),
      neutronPort('p-rtr-b', NET_B, 'fa:16:3e:95:00:01', '10.95.0.1', ROUTER, 'network:router_interface'),
    ],
  });

  const nova = createNovaMetadataServer({
    sharedSecret: SECRET,
    instances: parseInstances(
      {
        instances: [VM1, VM2].map((vm) => ({
          uuid: vm.uuid,
          project_id: PROJECT,
          name: vm.tag,
          fixed_ips: [vm.ip],
        })),
      },
      'e2e-rpc',
    ),
  });
  const novaAddress = await nova.listen(0, '127.0.0.1');
  t.after(() => nova.close());

  // Debian's files, as the package leaves them: only the values debconf asks for are filled in.
  const render = (name: string) =>
    readFileSync(join(FIXTURES, name), 'utf8')
      .replaceAll('@TRANSPORT_URL@', url)
      .replaceAll('@STATE_PATH@', dir)
      .replaceAll('@NOVA_HOST@', '127.0.0.1')
      .replaceAll('@NOVA_PORT@', String(novaAddress.port))
      .replaceAll('@SECRET@', SECRET);
  writeFileSync(join(dir, 'neutron.conf'), render('neutron.conf.debian'), { mode: 0o640 });
  writeFileSync(join(dir, 'metadata_agent.ini'), render('metadata_agent.ini.debian'), { mode: 0o640 });
  const socketPath = join(dir, 'metadata_proxy');
  const agent = spawn(
    process.execPath,
    [
      AGENT_CLI,
      `--config-file=${join(dir, 'neutron.conf')}`,
      `--config-file=${join(dir, 'metadata_agent.ini')}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  let agentOut = '';
  agent.stdout.on('data', (c: Buffer) => (agentOut += c.toString()));
  agent.stderr.on('data', (c: Buffer) => (agentOut += c.toString()));
  t.after(() => {
    agent.kill('SIGKILL');
  });
  await waitUntil(
    () => /"code":"MDA_RPC_CONNECTED"/.test(agentOut) && /metadata-agent listening/.test(agentOut),
    30_000,
    `the agent:\n${agentOut}`,
  );

  const lab = await NetnsLab.create(t);
  // Network mode: a qdhcp-style namespace on the instance's L2 segment.
  const dhcp = await lab.addNamespace('qdhcp');
  const bridge = await lab.addBridge(dhcp, 'br');
  await lab.addAddress(dhcp, bridge, '10.94.0.2/24');
  await lab.addAddress(dhcp, bridge, '169.254.169.254/32');
  await lab.addAddress(dhcp, bridge, 'fe80::a9fe:a9fe/64', { nodad: true });
  const vm1 = await lab.addNamespace(VM1.tag);
  const v1 = await lab.addVethPair(dhcp, vm1, { mac2: VM1.mac });
  await lab.attachToBridge(dhcp, v1.dev1, bridge);
  await lab.addAddress(vm1, v1.dev2, `${VM1.ip}/24`);
  await lab.addRoute(vm1, '169.254.169.254/32', { via: '10.94.0.2' });
  await lab.waitForDad(vm1, v1.dev2);
  const dhcpProxy = lab.spawn(dhcp, process.execPath, [
    PROXY_CLI,
    '--bind',
    '169.254.169.254:80',
    '--bind',
    `[fe80::a9fe:a9fe%${bridge}]:80`,
    '--network-id',
    NET_A,
    '--metadata-proxy-socket',
    socketPath,
  ]);
  await dhcpProxy.waitForOutput(/ns-metadata-proxy listening/);

  // Router mode: a qrouter-style namespace, REDIRECT of 169.254.169.254:80 to the proxy on :9697.
  const rtr = await lab.addNamespace('qrouter');
  const vm2 = await lab.addNamespace(VM2.tag);
  const qr = await lab.addVethPair(rtr, vm2, { dev1: `qr-${lab.prefix}`, mac2: VM2.mac });
  await lab.addAddress(rtr, qr.dev1, '10.95.0.1/24');
  await lab.addAddress(vm2, qr.dev2, `${VM2.ip}/24`);
  await lab.addRoute(vm2, 'default', { via: '10.95.0.1' });
  await lab.waitForDad(vm2, qr.dev2);
  await lab.exec(rtr, 'iptables', [
    '-t',
    'nat',
    '-A',
    'PREROUTING',
    '-d',
    '169.254.169.254/32',
    '-i',
    qr.dev1,
    '-p',
    'tcp',
    '--dport',
    '80',
    '-j',
    'REDIRECT',
    '--to-ports',
    '9697',
  ]);
  const rtrProxy = lab.spawn(rtr, process.execPath, [
    PROXY_CLI,
    '--bind',
    '0.0.0.0:9697',
    '--router-id',
    ROUTER,
    '--metadata-proxy-socket',
    socketPath,
  ]);
  await rtrProxy.waitForOutput(/ns-metadata-proxy listening/);

  const filtersFrom = async (from: number, count: number) => {
    await waitUntil(() => server.getPorts().length >= from + count, 5000, `${count} get_ports`);
    return server
      .getPorts()
      .slice(from)
      .map((e) => JSON.stringify(e.filters));
  };
  try {
    let n = server.getPorts().length;
    const v4 = await lab.httpGet(vm1, 'http://169.254.169.254/openstack/latest/meta_data.json');
    assert.equal(v4.status, 200, v4.text);
    assert.equal((JSON.parse(v4.text) as { uuid: string }).uuid, VM1.uuid);
    assert.deepEqual(await filtersFrom(n, 1), [
      JSON.stringify({ fixed_ips: { ip_address: [VM1.ip] }, network_id: [NET_A] }),
    ]);

    n = server.getPorts().length;
    const v6 = await lab.httpGet(vm1, {
      host: `fe80::a9fe:a9fe%${v1.dev2}`,
      port: 80,
      path: '/openstack/latest/meta_data.json',
    });
    assert.equal(v6.status, 200, v6.text);
    assert.equal((JSON.parse(v6.text) as { uuid: string }).uuid, VM1.uuid);
    assert.deepEqual(await filtersFrom(n, 1), [
      JSON.stringify({ mac_address: [VM1.mac], network_id: [NET_A] }),
    ]);

    n = server.getPorts().length;
    const viaRouter = await lab.httpGet(vm2, 'http://169.254.169.254/openstack/latest/meta_data.json');
    assert.equal(viaRouter.status, 200, viaRouter.text);
    assert.equal((JSON.parse(viaRouter.text) as { uuid: string }).uuid, VM2.uuid);
    assert.deepEqual(await filtersFrom(n, 2), [
      JSON.stringify({ device_id: [ROUTER], device_owner: OWNERS }),
      JSON.stringify({ fixed_ips: { ip_address: [VM2.ip] }, network_id: [NET_B] }),
    ]);

    // The cache in front: the same instance again costs no RPC.
    n = server.getPorts().length;
    assert.equal((await lab.httpGet(vm2, 'http://169.254.169.254/latest/meta-data/hostname')).status, 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(server.getPorts().length, n);
    // And neutron-server lists the node's Metadata agent: its report arrived.
    assert.ok(server.reports().some((r) => r.agent_state.agent_type === 'Metadata agent'));
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- agent ---\n${agentOut.slice(-5000)}`;
    throw err;
  }
});
