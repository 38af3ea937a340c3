/*
 * The ways of creating listeners inside namespaces, as root, without the daemon around them: the Node
 * helper (nsenter and ip netns exec) and the python batch helper, each binding IPv4, dual-stack and an IPv6
 * link-local address with its zone; per-namespace failures (address not there, namespace gone) stay with
 * their namespace and leave nothing listening; the batch helper goes back to its own namespace after each
 * one. Then the daemon's worker is killed: a new one is started and every attachment served again.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { parseBind } from '@nmp/common';
import { inParallel, NetnsLab, requireRoot } from '@nmp/testkit';
import { runBatchHelper } from '../src/netns/batch-helper.js';
import { runListenerHelper } from '../src/netns/listener-helper.js';
import { HelperError, type HelperResult } from '../src/netns/listeners.js';
import { daemonClient } from '../src/protocol.js';
import { startChain, startDaemon, waitForList } from './fixture.js';

const PYTHON = '/usr/bin/python3';
const hasPython = () => spawnSync(PYTHON, ['-c', 'import ctypes'], { timeout: 10_000 }).status === 0;

/** A namespace with a veth end holding fe80::a9fe:a9fe (no DAD) and 169.254.169.254. */
async function metadataNamespace(lab: NetnsLab, tag: string): Promise<{ ns: string; dev: string }> {
  const ns = await lab.addNamespace(tag);
  const peer = await lab.addNamespace(`${tag}p`);
  const { dev1 } = await lab.addVethPair(ns, peer, {
    dev1: lab.devName(`${tag}a`),
    dev2: lab.devName(`${tag}b`),
  });
  await lab.addAddress(ns, dev1, '169.254.169.254/32');
  await lab.addAddress(ns, dev1, 'fe80::a9fe:a9fe/64', { nodad: true });
  return { ns, dev: dev1 };
}

function close(r: HelperResult): void {
  for (const l of r.listeners) l.handle.close();
}

test('Node helper (nsenter, ip) and python batch helper: listeners land in the right namespace', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const a = await metadataNamespace(lab, 'a');
  const b = await metadataNamespace(lab, 'b');
  const binds = (dev: string) =>
    ['169.254.169.254:80', `[fe80::a9fe:a9fe%${dev}]:80`, '[::]:9697'].map((x) => parseBind(x));
  const expected = (_dev: string) => ['169.254.169.254:80', '[fe80::a9fe:a9fe]:80', '[::]:9697'];

  for (const netnsExec of ['nsenter', 'ip'] as const) {
    const r = await runListenerHelper({
      namespace: a.ns,
      binds: binds(a.dev),
      backlog: 64,
      netnsExec,
      timeoutMs: 15_000,
    });
    try {
      assert.deepEqual(
        r.listeners.map((l) => l.address),
        expected(a.dev),
        netnsExec,
      );
      assert.equal((await lab.listeners(a.ns, 9697)).length, 1);
      assert.equal((await lab.listeners(b.ns, 9697)).length, 0);
    } finally {
      close(r);
    }
    await assert.rejects(
      runListenerHelper({
        namespace: a.ns,
        binds: [parseBind('10.99.0.1:80')],
        backlog: 64,
        netnsExec,
        timeoutMs: 15_000,
      }),
      (err: Error) => err instanceof HelperError && err.code === 'EADDRNOTAVAIL',
    );
  }
  assert.deepEqual(await lab.listeners(a.ns), [], 'closed handles leave nothing listening');

  if (!hasPython()) {
    t.diagnostic(`no ${PYTHON}: batch helper not tested`);
    return;
  }
  const rootBefore = spawnSync('ss', ['-Hltn', 'sport = :9697'], { encoding: 'utf8' }).stdout;
  // Failures first: the helper must come back to its own namespace after each and go on.
  const results = await runBatchHelper(
    [
      { namespace: a.ns, binds: [parseBind('10.99.0.1:80')] },
      { namespace: `${lab.prefix}-gone`, binds: [parseBind('169.254.169.254:80')] },
      { namespace: b.ns, binds: binds(b.dev) },
      { namespace: a.ns.replace(/-a$/, '-ap'), binds: [parseBind('0.0.0.0:9697')] },
    ],
    { backlog: 64, timeoutMs: 15_000, python: PYTHON },
  );
  const failed = results.get(a.ns);
  assert.ok(failed instanceof HelperError && failed.code === 'EADDRNOTAVAIL', String(failed));
  const gone = results.get(`${lab.prefix}-gone`);
  assert.ok(gone instanceof HelperError && gone.code === 'ENONS', String(gone));
  const good = results.get(b.ns) as HelperResult;
  const other = results.get(a.ns.replace(/-a$/, '-ap')) as HelperResult;
  try {
    assert.deepEqual(
      good.listeners.map((l) => l.address),
      expected(b.dev),
    );
    assert.deepEqual(
      other.listeners.map((l) => l.address),
      ['0.0.0.0:9697'],
    );
    assert.equal((await lab.listeners(b.ns, 80)).length, 2);
    assert.equal((await lab.listeners(a.ns.replace(/-a$/, '-ap'), 9697)).length, 1);
    assert.deepEqual(await lab.listeners(a.ns), [], 'the failed namespace got nothing');
    // Nothing was bound in the root namespace by a helper that failed to go back.
    const root = spawnSync('ss', ['-Hltn', 'sport = :9697'], { encoding: 'utf8' });
    assert.equal(root.stdout, rootBefore);
  } finally {
    close(good);
    close(other);
  }
});

test('the serving worker dies: a new one serves every attachment again', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const nets = await inParallel([0, 1, 2], 3, async (i) => {
    const ns = await lab.addNamespace(`w${i}`);
    await lab.ip(ns, ['addr', 'add', '169.254.169.254/32', 'dev', 'lo']);
    return { ns, networkId: `net-${i}-${lab.prefix}`, instance: `0000000${i}-1111-4222-8333-444444444444` };
  });
  const chain = await startChain(
    t,
    lab,
    nets.map((n) => ({ networkId: n.networkId, ip: '169.254.169.254', instance: n.instance })),
  );
  const daemon = await startDaemon(lab, chain, hasPython() ? ['--netns-exec', 'python'] : []);
  try {
    for (const n of nets)
      await daemonClient.attach(chain.controlSocket, {
        id: n.networkId,
        mode: 'network',
        namespace: n.ns,
        binds: ['169.254.169.254:80'],
      });
    const before = await daemonClient.list(chain.controlSocket);
    assert.equal(before.daemon.healthy, 3);
    const oldWorker = before.daemon.workerPid!;
    process.kill(oldWorker, 'SIGKILL');
    const after = await waitForList(
      chain,
      (l) => l.daemon.workerPid !== undefined && l.daemon.workerPid !== oldWorker && l.daemon.healthy === 3,
      20_000,
    );
    assert.notEqual(after.daemon.workerPid, oldWorker);
    for (const n of nets) {
      const r = await lab.httpGet(n.ns, 'http://169.254.169.254/openstack/latest/meta_data.json');
      assert.equal(r.status, 200, r.text);
      assert.equal(JSON.parse(r.text).uuid, n.instance);
    }
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- daemon ---\n${daemon.output().slice(-4000)}`;
    throw err;
  }
});
