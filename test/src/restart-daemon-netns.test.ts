/*
 * As root: the proxy daemon replaced under load loses no request. Three qdhcp-style namespaces attached
 * to one daemon, clients in a closed loop in three instance namespaces (GET, and password POSTs with
 * bodies of their own), the agent behind it and a Nova that records every POST. The daemon hands over
 * twice (SIGUSR2, what `systemctl reload` sends): every listener with it, the new daemon's worker
 * serving them before the old one stops. Every request is answered 200, no POST reaches Nova twice, the
 * old supervisors and workers exit, and the new daemon answers on its control socket with every
 * attachment healthy (and takes a new one).
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { daemonClient } from '@nmp/metadata-proxy-daemon/client';
import {
  isProcessAlive,
  logFileLines,
  NetnsLab,
  requireRoot,
  startAgentCli,
  tempDir,
  until,
} from '@nmp/testkit';
import {
  CLI,
  type InstanceLoad,
  type InventoryPort,
  type LoadSummary,
  SECRET,
  startInstanceLoad,
  startRecordingNova,
  writeInventory,
} from './restart-harness.js';

const NETS = [1, 2, 3, 4].map((n) => `cc21000${n}-0000-4000-8000-00000000002${n}`);

test('the proxy daemon hands over twice under load: every request answered, no POST twice, attachments kept', async (t) => {
  if (!requireRoot(t)) return;
  const t0 = Date.now();
  t.after(() => t.diagnostic(`took ${Date.now() - t0} ms`));
  const dir = tempDir(t, 'nmp-restart-daemon-');
  chmodSync(dir, 0o755);
  const lab = await NetnsLab.create(t);
  const ports: InventoryPort[] = [];
  const pairs: Array<{ vm: string; ns: string; net: string }> = [];
  for (let i = 0; i < NETS.length; i++) {
    const vm = await lab.addNamespace(`vm${i}`);
    const ns = await lab.addNamespace(`dhcp${i}`);
    const { dev1, dev2 } = await lab.addVethPair(vm, ns);
    const ip = `10.13${i}.0.5`;
    await lab.addAddress(vm, dev1, `${ip}/24`);
    await lab.addAddress(ns, dev2, `10.13${i}.0.2/24`);
    await lab.addAddress(ns, dev2, '169.254.169.254/32');
    await lab.addRoute(vm, '169.254.169.254/32', { dev: dev1 });
    ports.push({ networkId: NETS[i]!, ip, instance: `dd21000${i}-0000-4000-8000-000000000021` });
    pairs.push({ vm, ns, net: NETS[i]! });
  }
  const nova = await startRecordingNova(t);
  const inventory = writeInventory(dir, ports);
  const socket = join(dir, 'metadata_proxy');
  await startAgentCli({
    t,
    socketPath: socket,
    novaPort: nova.port,
    sharedSecret: SECRET,
    resolverArgs: ['--resolver', 'inventory', '--inventory-file', inventory],
    args: ['--metadata-proxy-socket-mode', 'all', '--log-level', 'warn'],
    startTimeoutMs: 60_000,
  });

  const stateDir = join(dir, 'state');
  const control = join(stateDir, 'nmp-metadata-proxy-daemon', 'control.sock');
  const log = join(dir, 'daemon.log');
  // The serving worker (nobody) appends to it as well.
  writeFileSync(log, '', { mode: 0o666 });
  chmodSync(log, 0o666);
  const daemon = lab.spawn(undefined, process.execPath, [
    CLI.daemon,
    '--state-path',
    stateDir,
    '--metadata-proxy-socket',
    socket,
    '--metadata-proxy-user',
    'nobody',
    '--namespace-check-interval',
    '1',
    '--log-file',
    log,
  ]);
  const successors: number[] = [];
  t.after(() => {
    for (const pid of successors)
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
  });
  await until(
    'the control socket',
    () => (logFileLines(log).some((l) => l.msg === 'metadata-proxy-daemon ready') ? true : undefined),
    60_000,
  );
  let loads: InstanceLoad[] = [];
  const okAll = () => loads.reduce((n, l) => n + l.ok(), 0);
  const waitOk = (n: number) => until(`${n} answers`, () => (okAll() >= n ? true : undefined), 60_000);
  const summaries: LoadSummary[] = [];
  let supervisor = daemon.pid;
  try {
    for (const p of pairs.slice(0, 3))
      await daemonClient.attach(control, {
        id: p.net,
        mode: 'network',
        namespace: p.ns,
        binds: ['169.254.169.254:80'],
      });
    loads = pairs.slice(0, 3).map((p) =>
      startInstanceLoad(lab, p.vm, {
        url: 'http://169.254.169.254',
        workers: 6,
        postEvery: 5,
        maxMs: 120_000,
      }),
    );
    await waitOk(300);
    t.diagnostic(`set up and loaded in ${Date.now() - t0} ms`);
    for (let round = 1; round <= 2; round++) {
      const workerBefore = (await daemonClient.list(control)).daemon.workerPid!;
      const before = okAll();
      const signalled = Date.now();
      process.kill(supervisor, 'SIGUSR2');
      const next = await until(
        'the hand-over',
        () => {
          const failed = logFileLines(log).find(
            (l) => l.pid === supervisor && l.code === 'NMP_HANDOVER_FAILED',
          );
          if (failed) throw new Error(`hand-over failed: ${JSON.stringify(failed)}`);
          return logFileLines(log).find((l) => l.pid === supervisor && l.code === 'NMP_HANDED_OVER')
            ?.successor as number | undefined;
        },
        60_000,
      );
      successors.push(next);
      await until(
        'the old supervisor and worker to exit',
        () => (!isProcessAlive(supervisor) && !isProcessAlive(workerBefore) ? true : undefined),
        60_000,
      );
      const at = (pid: number, code: string) =>
        Date.parse(
          String(logFileLines(log).find((l) => l.pid === pid && (l.code === code || l.msg === code))?.time),
        ) - signalled;
      t.diagnostic(
        `hand-over ${round}: ${supervisor} -> ${next}: handed over after ${at(supervisor, 'NMP_HANDED_OVER')} ms, old supervisor stopped after ${at(supervisor, 'stopped')} ms, old worker gone after ${Date.now() - signalled} ms; ${okAll() - before} answered meanwhile`,
      );
      if (process.env.NMP_DEBUG_HANDOVER)
        for (const l of logFileLines(log))
          if (l.role === 'supervisor' && Date.parse(String(l.time)) >= signalled)
            t.diagnostic(`${Date.parse(String(l.time)) - signalled} ms ${l.pid} ${l.msg} ${l.code ?? ''}`);
      supervisor = next;
      const list = await daemonClient.list(control);
      assert.equal(list.daemon.pid, next);
      assert.notEqual(list.daemon.workerPid, workerBefore);
      assert.deepEqual(
        list.attachments.map((a) => [a.namespace, a.state, a.healthy]),
        pairs.slice(0, 3).map((p) => [p.ns, 'listening', true]),
      );
      await waitOk(okAll() + 200);
    }
    // The new daemon takes control requests: a fourth namespace.
    const p4 = pairs[3]!;
    const attached = await daemonClient.attach(control, {
      id: p4.net,
      mode: 'network',
      namespace: p4.ns,
      binds: ['169.254.169.254:80'],
    });
    assert.equal(attached.state, 'listening');
    const r = await lab.httpGet(p4.vm, 'http://169.254.169.254/openstack/latest/meta_data.json');
    assert.equal(r.status, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- daemon log ---\n${readFileSafe(log).slice(-4000)}`);
  } finally {
    for (const l of loads) summaries.push(await l.finish());
  }
  const all = {
    failures: summaries.flatMap((s) => s.failures),
    ok: summaries.reduce((n, s) => n + (s.statuses['200'] ?? 0), 0),
    posts: summaries.flatMap((s) => s.posts),
    clientRetries: summaries.reduce((n, s) => n + s.clientRetries, 0),
  };
  t.diagnostic(
    `${all.ok} answered, ${all.posts.length} POSTs, client retries of idle connections the old worker closed ${all.clientRetries}`,
  );
  assert.deepEqual(all.failures, [], 'requests that failed');
  assert.ok(all.ok >= 700);
  assert.equal(new Set(nova.posts).size, nova.posts.length, 'a POST reached Nova twice');
  assert.deepEqual([...nova.posts].sort(), [...all.posts].sort());
});

function readFileSafe(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '(none)';
  }
}
