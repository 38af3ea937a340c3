/*
 * As root, end to end on a real OVN chassis (testkit's OvnSandbox: ovsdb-servers for Open_vSwitch, NB and
 * SB, ovn-northd, and in a "hypervisor" namespace ovs-vswitchd with the userspace datapath and
 * ovn-controller). A network is written to the Northbound as neutron's OVN driver writes it: a logical
 * switch, a VM port and the metadata localport. The instance is a namespace plugged into br-int with the
 * VM port's iface-id.
 *
 * Our programs, each as its CLI: metadata-agent (resolver auto -> ovn, chassis name from the local
 * Open_vSwitch database), metadata-proxy-daemon, ovn-metadata-provisioner (proxy_mode = daemon) and
 * nova-metadata-dev. Checked: the provisioner builds ovnmeta-<network> (under a test prefix) as neutron
 * does; from the instance, cloud-init's own reader gets meta_data.json through OVN's flows, the localport,
 * our proxy, the agent's Southbound index and Nova; the same over IPv6 link-local; the agent is alive in
 * Chassis_Private and ready; deleting the VM port tears the namespace down.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { daemonClient } from '@nmp/metadata-proxy-daemon';
import { createNovaMetadataServer } from '@nmp/nova-metadata-dev';
import {
  NetnsLab,
  OVN_SANDBOX_FILES,
  OVN_SANDBOX_TOOLS,
  OvnSandbox,
  requireRoot,
  requireTools,
  runCommand,
  sleep,
  startAgentCli,
  unixHttpGet,
} from '@nmp/testkit';

const packages = fileURLToPath(new URL('../../packages/', import.meta.url));
const DAEMON_CLI = join(packages, 'metadata-proxy-daemon/dist/src/cli.js');
const PROVISIONER_CLI = join(packages, 'ovn-provisioner/dist/src/cli.js');
const PYTHON = '/usr/bin/python3';
const SECRET = 'e2e-ovn-secret';

const NET = '0e2e0a11-7c44-4d0e-8b0f-3b1c1e7d0001';
const VM_PORT = '0e2e0b22-7c44-4d0e-8b0f-3b1c1e7d0005';
const META_PORT = '0e2e0c33-7c44-4d0e-8b0f-3b1c1e7d0002';
const INSTANCE = '0e2e0d44-7c44-4d0e-8b0f-3b1c1e7d0099';
const PROJECT = 'e2e0000000000000000000000000cafe';
const VM_MAC = 'fa:16:3e:0e:00:05';
const META_MAC = 'fa:16:3e:0e:00:02';

const READ = `
import json, sys
from cloudinit.sources.DataSourceOpenStack import read_metadata_service
md = read_metadata_service(sys.argv[1], timeout=5, retries=2)
print(json.dumps({"uuid": md["metadata"].get("uuid"), "name": md["metadata"].get("name"), "keys": sorted(md.keys())}, default=str))
`;

function cloudInitMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import cloudinit.sources.DataSourceOpenStack'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found`;
  if (r.status !== 0) return 'cloud-init is not installed (apt-get install cloud-init)';
  return undefined;
}

test('OVN end to end: cloud-init in an instance reads its metadata through OVN, our proxy and agent', async (t) => {
  if (!requireRoot(t)) return;
  if (!requireTools(t, OVN_SANDBOX_TOOLS, OVN_SANDBOX_FILES)) return;
  const missing = cloudInitMissing();
  if (missing) assert.fail(`${missing}: needed as root (CI installs it)`);

  const lab = await NetnsLab.create(t);
  const box = await OvnSandbox.start(t, lab);
  const prefix = `${lab.prefix}-ovnmeta-`;
  const metaNs = `${prefix}${NET}`;
  // The namespace the provisioner makes is this test's to remove, whatever happens.
  lab.adoptNamespace(metaNs);

  // neutron's view of the network: the logical switch, the metadata localport and the VM's port.
  await box.addNetwork(NET, 'e2e-net');
  await box.addPort(NET, {
    id: META_PORT,
    mac: META_MAC,
    ips: ['10.78.0.2', 'fd00:78::2'],
    type: 'localport',
    deviceId: `ovnmeta-${NET}`,
    mtu: 1442,
  });
  await box.addPort(NET, {
    id: VM_PORT,
    mac: VM_MAC,
    ips: ['10.78.0.5', 'fd00:78::5'],
    deviceId: INSTANCE,
    projectId: PROJECT,
    mtu: 1442,
  });
  // The instance: its address and the route native OVN DHCP would push (option 121 via the metadata port).
  const vm = await box.addVm(
    'vm',
    VM_PORT,
    VM_MAC,
    ['10.78.0.5/24', 'fd00:78::5/64'],
    [{ dest: '169.254.169.254/32', via: '10.78.0.2' }],
  );
  await box.until('the VM port bound to hv1', async () => (await box.boundTo(VM_PORT)) === 'hv1');

  const nova = createNovaMetadataServer({
    sharedSecret: SECRET,
    instances: [{ uuid: INSTANCE, project_id: PROJECT, name: 'e2e-ovn-vm', fixed_ips: ['10.78.0.5'] }],
  });
  const novaAddress = await nova.listen(0, '127.0.0.1');
  t.after(() => nova.close());

  const agentSocket = join(box.dir, 'metadata_proxy');
  const adminSocket = join(box.dir, 'agent.admin');
  const agent = await startAgentCli({
    t,
    socketPath: agentSocket,
    novaPort: novaAddress.port,
    sharedSecret: SECRET,
    resolverArgs: ['--ovn-sb-connection', box.sb.unixRemote, '--ovs-ovsdb-connection', box.ovs.unixRemote],
    args: ['--metadata-proxy-socket-mode', 'all', '--admin-socket', adminSocket, '--agent-down-time', '9'],
    startTimeoutMs: 20_000,
  });

  const stateDir = join(box.dir, 'state');
  const controlSocket = join(stateDir, 'nmp-metadata-proxy-daemon', 'control.sock');
  const daemon = lab.spawn(undefined, process.execPath, [
    DAEMON_CLI,
    '--state-path',
    stateDir,
    '--metadata-proxy-socket',
    agentSocket,
    '--metadata-proxy-user',
    'nobody',
    '--namespace-check-interval',
    '1',
    '--log-level',
    'warn',
  ]);
  await box.until('the daemon', async () => {
    try {
      await daemonClient.list(controlSocket, 2000);
      return true;
    } catch {
      return daemon.process.exitCode === null ? false : Promise.reject(new Error(daemon.output()));
    }
  });

  const provisioner = lab.spawn(undefined, process.execPath, [
    PROVISIONER_CLI,
    '--ovn-sb-connection',
    box.sb.unixRemote,
    '--ovs-ovsdb-connection',
    box.ovs.unixRemote,
    '--namespace-prefix',
    prefix,
    '--ovs-namespace',
    box.hv,
    '--proxy-mode',
    'daemon',
    '--daemon-control-socket',
    controlSocket,
    '--state-path',
    stateDir,
    '--metadata-proxy-socket',
    agentSocket,
    '--retry-max',
    '5',
  ]);
  const diagnostics = () =>
    `--- provisioner ---\n${provisioner.output().slice(-5000)}\n--- agent ---\n${agent.output().slice(-5000)}\n--- daemon ---\n${daemon.output().slice(-3000)}\n${box.diagnostics()}`;
  try {
    await provisioner.waitForOutput(/ovn-metadata-provisioner running/, 30_000);
    await box.until('the metadata namespace', () => existsSync(`/run/netns/${metaNs}`));
    await box.until('the daemon serving it', async () =>
      (await daemonClient.list(controlSocket)).attachments.some((a) => a.namespace === metaNs && a.healthy),
    );
    const attachment = (await daemonClient.list(controlSocket)).attachments.find(
      (a) => a.namespace === metaNs,
    )!;
    assert.equal(attachment.mode, 'ovn');
    assert.equal(attachment.id, NET);
    // The layout neutron's agent makes: the metadata port's MAC and MTU, its address, the metadata ones.
    const inner = JSON.parse(
      (await lab.ip(metaNs, ['-j', 'addr', 'show', 'dev', 'tap0e2e0a11-71'])).stdout,
    )[0];
    assert.equal(inner.address, META_MAC);
    assert.equal(inner.mtu, 1442);
    const addrs = (inner.addr_info as { local: string }[]).map((a) => a.local);
    for (const a of ['169.254.169.254', '10.78.0.2', 'fe80::a9fe:a9fe'])
      assert.ok(addrs.includes(a), addrs.join(' '));
    assert.equal(
      (await box.vsctl(['get', 'Interface', 'tap0e2e0a11-70', 'external_ids:iface-id']))
        .trim()
        .replace(/"/g, ''),
      META_PORT,
    );

    // cloud-init's own reader, inside the instance, over OVN's flows.
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        'ip',
        ['netns', 'exec', vm.ns, PYTHON, '-c', READ, 'http://169.254.169.254'],
        { encoding: 'utf8', timeout: 90_000 },
        (err, stdout, stderr) =>
          err ? reject(new Error(`cloud-init failed: ${stderr || err.message}`)) : resolve(stdout),
      );
    });
    const md = JSON.parse(out.trim().split('\n').pop()!) as { uuid: string; name: string; keys: string[] };
    assert.equal(md.uuid, INSTANCE);
    assert.equal(md.name, 'e2e-ovn-vm');

    // IPv6 link-local: looked up by the MAC in the EUI-64 source address.
    const v6 = await lab.httpGet(
      vm.ns,
      { host: `fe80::a9fe:a9fe%${vm.dev}`, port: 80, path: '/openstack/latest/meta_data.json' },
      { timeoutMs: 20_000 },
    );
    assert.equal(v6.status, 200, v6.text);
    assert.equal((JSON.parse(v6.text) as { uuid: string }).uuid, INSTANCE);

    // An identity header the instance sends is not believed.
    const spoofed = await lab.httpGet(vm.ns, 'http://169.254.169.254/openstack/latest/meta_data.json', {
      headers: {
        'X-OVN-Network-ID': '00000000-0000-0000-0000-000000000000',
        'X-Instance-ID': 'someone-else',
      },
    });
    assert.equal((JSON.parse(spoofed.text) as { uuid: string }).uuid, INSTANCE);

    // neutron-server would list the agent as alive; /readyz agrees.
    await box.until('the liveness keys', async () =>
      /neutron:ovn-metadata-id/.test(
        await box.sbctl(['--columns=external_ids', 'list', 'Chassis_Private', 'hv1'], true),
      ),
    );
    const ready = await unixHttpGet(adminSocket, '/readyz');
    assert.equal(ready.status, 200, ready.body);

    // The VM port goes away (the instance is deleted): the namespace is torn down.
    await box.deletePort(VM_PORT);
    await box.until('the namespace torn down', () => !existsSync(`/run/netns/${metaNs}`), 30_000);
    await box.until(
      'the daemon detached',
      async () => !(await daemonClient.list(controlSocket)).attachments.some((a) => a.namespace === metaNs),
    );
    assert.equal(
      (await box.vsctl(['--if-exists', 'get', 'Interface', 'tap0e2e0a11-70', 'name'], true)).trim(),
      '',
    );
    assert.equal(
      (
        await runCommand(undefined, 'ip', ['-n', box.hv, 'link', 'show', 'tap0e2e0a11-70'], {
          allowFailure: true,
        })
      ).code !== 0,
      true,
    );
  } catch (err) {
    if (err instanceof Error) err.message += `\n${diagnostics()}`;
    throw err;
  } finally {
    await sleep(0);
  }
});
