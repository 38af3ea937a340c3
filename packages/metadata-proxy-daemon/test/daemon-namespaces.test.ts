/*
 * One daemon, fifty namespaces, as root: fifty qdhcp-style namespaces, each with an instance namespace on a
 * veth. Every instance has the SAME address (10.250.0.11) on its own network, so only the network id the
 * listener stamps tells the agent which instance asks: an instance that gets its own metadata proves the
 * listener that accepted its connection stamped its network. Then: detach removes exactly one listener,
 * a restart of the daemon restores and serves all that remain (from its attachments file), and a
 * namespace that vanishes loses its listener and is attached again when it comes back.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import {
  HttpGetError,
  inParallel,
  NetnsLab as Lab,
  type NetnsLab,
  requireRoot,
  runCommand,
  sleep,
} from '@nmp/testkit';
import { daemonClient } from '../src/protocol.js';
import {
  type Chain,
  type Port,
  readAttachmentsFile,
  startChain,
  startDaemon,
  waitForList,
} from './fixture.js';

const N = 50;
const VM_IP = '10.250.0.11';
const DHCP_IP = '10.250.0.2';
const META = 'http://169.254.169.254/openstack/latest/meta_data.json';

interface Network {
  readonly index: number;
  readonly networkId: string;
  readonly instance: string;
  readonly dhcpNs: string;
  readonly vmNs: string;
}

/** qdhcp-like namespace <-> instance namespace; the metadata address sits on the DHCP end. */
async function buildNetwork(lab: NetnsLab, index: number): Promise<Network> {
  const dhcpNs = await lab.addNamespace(`d${index}`);
  const vmNs = await lab.addNamespace(`v${index}`);
  const { dev1, dev2 } = await lab.addVethPair(dhcpNs, vmNs, {
    dev1: lab.devName(`d${index}`),
    dev2: lab.devName(`v${index}`),
  });
  await lab.addAddress(dhcpNs, dev1, `${DHCP_IP}/24`);
  await lab.addAddress(dhcpNs, dev1, '169.254.169.254/32');
  await lab.addAddress(vmNs, dev2, `${VM_IP}/24`);
  await lab.addRoute(vmNs, '169.254.169.254/32', { via: DHCP_IP });
  return { index, networkId: randomUUID(), instance: randomUUID(), dhcpNs, vmNs };
}

/** The instance's view: its uuid from meta_data.json, or the error code when nothing answers. */
async function fetchUuid(lab: NetnsLab, n: Network, timeoutMs = 8_000): Promise<string> {
  try {
    const r = await lab.httpGet(n.vmNs, META, { timeoutMs });
    if (r.status !== 200) return `HTTP ${r.status}: ${r.text.slice(0, 200)}`;
    return (JSON.parse(r.text) as { uuid: string }).uuid;
  } catch (err) {
    if (err instanceof HttpGetError) return err.code;
    throw err;
  }
}

/** Every listed network's instance gets its own metadata, and the agent saw its network id stamped. */
async function assertServed(lab: NetnsLab, chain: Chain, networks: readonly Network[]): Promise<void> {
  const before = chain.seen.length;
  const uuids = await inParallel(networks, 4, (n) => fetchUuid(lab, n));
  assert.deepEqual(
    uuids,
    networks.map((n) => n.instance),
    'each instance gets its own metadata',
  );
  const seen = chain.seen.slice(before);
  assert.deepEqual(
    seen.map((s) => s.network).sort(),
    networks.map((n) => n.networkId).sort(),
    'the agent saw each network id once',
  );
  for (const s of seen) {
    assert.equal(s.router, undefined);
    assert.equal(s.forwardedFor, VM_IP);
  }
}

test('50 namespaces on one daemon: own metadata each, exact detach, restart restores all', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await Lab.create(t);
  const t0 = Date.now();
  const networks = await inParallel(
    Array.from({ length: N }, (_, i) => i),
    8,
    (i) => buildNetwork(lab, i),
  );
  t.diagnostic(`${N} network + ${N} instance namespaces in ${Date.now() - t0} ms`);
  const ports: Port[] = networks.map((n) => ({ networkId: n.networkId, ip: VM_IP, instance: n.instance }));
  const chain = await startChain(t, lab, ports);
  // At scale the batch helper (python3, one process per batch of namespaces); without python3 the
  // default Node helper per namespace. The other tests here and the hooks' cover the other two ways.
  const exec =
    spawnSync('/usr/bin/python3', ['-c', 'import ctypes'], { timeout: 10_000 }).status === 0
      ? 'python'
      : 'nsenter';
  t.diagnostic(`netns_exec = ${exec}`);
  const execFlags = ['--netns-exec', exec];
  let daemon = await startDaemon(lab, chain, execFlags);
  try {
    const t1 = Date.now();
    const attached = await inParallel(networks, 10, (n) =>
      daemonClient.attach(chain.controlSocket, {
        id: n.networkId,
        mode: 'network',
        namespace: n.dhcpNs,
        binds: ['169.254.169.254:80'],
      }),
    );
    t.diagnostic(`${N} attachments in ${Date.now() - t1} ms`);
    for (const a of attached) {
      assert.equal(a.state, 'listening');
      assert.deepEqual(a.listening, ['169.254.169.254:80']);
      assert.equal(a.healthy, true);
    }
    const list = await daemonClient.list(chain.controlSocket);
    assert.equal(list.daemon.attachments, N);
    assert.equal(list.daemon.healthy, N);
    assert.equal(list.daemon.agentReachable, true);
    // One process serves them all: no process lives in any of the namespaces.
    for (const n of networks.slice(0, 5)) assert.deepEqual(await lab.pidsIn(n.dhcpNs), []);

    await assertServed(lab, chain, networks);

    // Attaching again with the same settings changes nothing (hooks repeat add on every sync).
    const again = await daemonClient.attach(chain.controlSocket, {
      id: networks[3]!.networkId,
      mode: 'network',
      namespace: networks[3]!.dhcpNs,
      binds: ['169.254.169.254:80'],
    });
    assert.equal(again.healthy, true);

    // Detach one: exactly that listener is gone.
    const gone = networks[7]!;
    const detached = await daemonClient.detach(chain.controlSocket, { namespace: gone.dhcpNs });
    assert.equal(detached?.id, gone.networkId);
    assert.deepEqual(await lab.listeners(gone.dhcpNs, 80), [], 'nothing listens in the detached namespace');
    const refused = await fetchUuid(lab, gone, 3_000);
    assert.ok(['ECONNREFUSED', 'ETIMEDOUT'].includes(refused), `detached instance got ${refused}`);
    const rest = networks.filter((n) => n !== gone);
    for (const n of rest.slice(0, 3)) assert.equal((await lab.listeners(n.dhcpNs, 80)).length, 1);
    await assertServed(lab, chain, rest);
    const afterDetach = await daemonClient.list(chain.controlSocket);
    assert.equal(afterDetach.daemon.attachments, N - 1);
    assert.ok(!afterDetach.attachments.some((a) => a.namespace === gone.dhcpNs));
    assert.deepEqual(
      readAttachmentsFile(chain)
        .attachments.map((a) => a.namespace)
        .sort(),
      rest.map((n) => n.dhcpNs).sort(),
      'the attachments file lists exactly the remaining attachments',
    );

    // Restart: the listeners go with the process, and all come back from the file.
    await daemon.stop(15_000);
    assert.equal(await fetchUuid(lab, rest[0]!, 3_000), 'ECONNREFUSED', 'stopped daemon: nothing listens');
    const t2 = Date.now();
    daemon = await startDaemon(lab, chain, execFlags);
    const restored = await waitForList(chain, (l) => l.daemon.healthy === N - 1, 60_000);
    t.diagnostic(`restart: ${N - 1} attachments restored in ${Date.now() - t2} ms`);
    assert.equal(restored.daemon.attachments, N - 1);
    assert.ok(
      !restored.attachments.some((a) => a.namespace === gone.dhcpNs),
      'a detached one stays detached',
    );
    await assertServed(lab, chain, rest);
    assert.ok(['ECONNREFUSED', 'ETIMEDOUT'].includes(await fetchUuid(lab, gone, 3_000)));
  } catch (err) {
    if (err instanceof Error)
      err.message += `\n--- daemon ---\n${daemon.output().slice(-6000)}\n${chain.diagnostics()}`;
    throw err;
  }
});

test('a namespace that vanishes loses its listener; restored when it returns; missing ones are reported at start', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await Lab.create(t);
  const networks = await inParallel([0, 1, 2], 3, (i) => buildNetwork(lab, i));
  const chain = await startChain(
    t,
    lab,
    networks.map((n) => ({ networkId: n.networkId, ip: VM_IP, instance: n.instance })),
  );
  // This one enters namespaces with `ip netns exec` (the other test: nsenter, the default).
  let daemon = await startDaemon(lab, chain, ['--netns-exec', 'ip']);
  try {
    for (const n of networks)
      await daemonClient.attach(chain.controlSocket, {
        id: n.networkId,
        mode: 'network',
        namespace: n.dhcpNs,
        binds: ['169.254.169.254:80', `${DHCP_IP}:80`],
      });
    await assertServed(lab, chain, networks);

    // Delete the first network's namespace (its instance namespace stays).
    const [victim, ...others] = networks as [Network, ...Network[]];
    await runCommand(undefined, 'ip', ['netns', 'del', victim.dhcpNs]);
    const dropped = await waitForList(
      chain,
      (l) => l.attachments.find((a) => a.namespace === victim.dhcpNs)?.state === 'namespace-missing',
      10_000,
    );
    const v = dropped.attachments.find((a) => a.namespace === victim.dhcpNs)!;
    assert.equal(v.healthy, false);
    assert.equal(v.namespaceExists, false);
    assert.deepEqual(v.listening, []);
    assert.equal(dropped.daemon.healthy, 2);
    await assertServed(lab, chain, others);

    // A restart while it is missing: reported, kept, the others served.
    await daemon.stop(15_000);
    daemon = await startDaemon(lab, chain, ['--netns-exec', 'ip']);
    const afterRestart = await waitForList(chain, (l) => l.daemon.healthy === 2, 30_000);
    assert.equal(
      afterRestart.attachments.find((a) => a.namespace === victim.dhcpNs)?.state,
      'namespace-missing',
    );
    await assertServed(lab, chain, others);

    // The namespace comes back (a new one, same name, wired as before): attached again on its own.
    await runCommand(undefined, 'ip', ['netns', 'add', victim.dhcpNs]);
    await lab.ip(victim.dhcpNs, ['link', 'set', 'lo', 'up']);
    // The old veth went with the old namespace once the daemon let go of it: wait for that.
    const oldDev = lab.devName('v0');
    for (let i = 0; i < 100; i++) {
      const r = await lab.ip(victim.vmNs, ['link', 'show', oldDev], { allowFailure: true });
      if (r.code !== 0) break;
      await sleep(100);
    }
    const { dev1, dev2 } = await lab.addVethPair(victim.dhcpNs, victim.vmNs, {
      dev1: lab.devName('x0'),
      dev2: lab.devName('y0'),
    });
    await lab.addAddress(victim.dhcpNs, dev1, `${DHCP_IP}/24`);
    await lab.addAddress(victim.dhcpNs, dev1, '169.254.169.254/32');
    await lab.addAddress(victim.vmNs, dev2, `${VM_IP}/24`);
    await lab.ip(victim.vmNs, ['route', 'replace', '169.254.169.254/32', 'via', DHCP_IP, 'dev', dev2]);
    await waitForList(chain, (l) => l.daemon.healthy === 3, 15_000);
    await assertServed(lab, chain, networks);
  } catch (err) {
    if (err instanceof Error)
      err.message += `\n--- daemon ---\n${daemon.output().slice(-6000)}\n${chain.diagnostics()}`;
    throw err;
  }
});
