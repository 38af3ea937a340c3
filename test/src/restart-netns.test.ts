/*
 * As root: restarts under load lose no request. Sixteen instance-side clients in a closed loop (GET
 * meta_data.json, every fifth request a password POST with a body of its own) talk to our proxy in a
 * qdhcp-style namespace, which forwards to our agent on its UNIX socket, which forwards to a Nova that
 * records every POST. Meanwhile, one after the other:
 *
 *   1. the agent is restarted the systemd way: its socket held by a stand-in for its .socket unit
 *      (socket_holder.py, sd_listen_fds), SIGTERM, exit, start again;
 *   2. the proxy is restarted the same way, its listener created by the holder inside the namespace;
 *   3. the agent hands over to a new process (SIGUSR2; no systemd);
 *   4. the proxy hands over (SIGUSR2);
 *   5. the new agent hands over once more.
 *
 * Every request is answered 200, every POST reached Nova exactly once, and the old processes are gone.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SERVICE_NODE_FLAGS } from '@nmp/common';
import {
  agentCliArgs,
  isProcessAlive,
  logFileLines,
  NetnsLab,
  proxyCliArgs,
  requireRoot,
  sleep,
  startSocketHolder,
  tempDir,
} from '@nmp/testkit';
import {
  answeredBetween,
  CLI,
  SECRET,
  startInstanceLoad,
  startRecordingNova,
  writeInventory,
} from './restart-harness.js';

const NET = 'aa210000-0000-4000-8000-000000000021';
const VM_IP = '10.121.0.5';
const INSTANCE = 'bb210000-0000-4000-8000-000000000021';

/** Wait for `pid`'s hand-over line in `file`; the successor's pid. */
async function handedOver(file: string, pid: number, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logFileLines(file).find((l) => l.pid === pid && l.code === 'NMP_HANDED_OVER');
    if (line) return line.successor as number;
    const failed = logFileLines(file).find((l) => l.pid === pid && l.code === 'NMP_HANDOVER_FAILED');
    if (failed) throw new Error(`hand-over of ${pid} failed: ${JSON.stringify(failed)}`);
    if (Date.now() > deadline) throw new Error(`no hand-over by ${pid} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function gone(pid: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still runs after ${timeoutMs} ms`);
    await sleep(50);
  }
}

test('agent and proxy restarted under load (systemd socket passing, hand-over): every request answered, no POST twice', async (t) => {
  if (!requireRoot(t)) return;
  const dir = tempDir(t, 'nmp-restart-');
  const lab = await NetnsLab.create(t);
  const vm = await lab.addNamespace('vm');
  const net = await lab.addNamespace('net');
  const { dev1, dev2 } = await lab.addVethPair(vm, net);
  await lab.addAddress(vm, dev1, `${VM_IP}/24`);
  await lab.addAddress(net, dev2, '10.121.0.2/24');
  await lab.addAddress(net, dev2, '169.254.169.254/32');
  await lab.addRoute(vm, '169.254.169.254/32', { dev: dev1 });

  const nova = await startRecordingNova(t);
  const inventory = writeInventory(dir, [{ networkId: NET, ip: VM_IP, instance: INSTANCE }]);
  const socket = join(dir, 'metadata_proxy');
  const agentLog = join(dir, 'agent.log');
  const proxyLog = join(dir, 'proxy.log');
  const env = { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: SECRET };
  const agents = startSocketHolder(
    lab,
    undefined,
    { unix: [socket], name: 'metadata' },
    [
      process.execPath,
      ...SERVICE_NODE_FLAGS,
      CLI.agent,
      ...agentCliArgs({
        socketPath: socket,
        novaPort: nova.port,
        resolverArgs: ['--resolver', 'inventory', '--inventory-file', inventory],
        args: ['--log-file', agentLog],
      }),
    ],
    env,
  );
  const proxies = startSocketHolder(lab, net, { tcp: ['169.254.169.254:80'], name: 'listen' }, [
    process.execPath,
    ...SERVICE_NODE_FLAGS,
    CLI.proxy,
    ...proxyCliArgs({
      socketPath: socket,
      host: '169.254.169.254',
      port: 80,
      identity: ['--network-id', NET],
      args: ['--log-file', proxyLog],
    }),
  ]);
  const successors: number[] = [];
  t.after(() => {
    for (const pid of successors)
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
  });
  await agents.started(1);
  await proxies.started(1);

  const load = startInstanceLoad(lab, vm, {
    url: 'http://169.254.169.254',
    workers: 16,
    postEvery: 5,
    maxMs: 120_000,
  });
  const windows: Array<{ what: string; from: number; to: number }> = [];
  const step = async (what: string, restart: () => Promise<void>) => {
    await load.succeeded(load.ok() + 150);
    const from = Date.now();
    await restart();
    windows.push({ what, from, to: Date.now() });
  };
  let summary: Awaited<ReturnType<typeof load.finish>> | undefined;
  try {
    await load.succeeded(150, 60_000);
    await step('agent: systemd-style restart', async () => {
      agents.restart();
      assert.equal(await agents.exited(1), 0, 'the old agent stopped cleanly');
      await agents.started(2);
    });
    await step('proxy: systemd-style restart', async () => {
      proxies.restart();
      assert.equal(await proxies.exited(1), 0, 'the old proxy stopped cleanly');
      await proxies.started(2);
    });
    const agent2 = await agents.started(2);
    let agent3 = 0;
    await step('agent: hand-over', async () => {
      process.kill(agent2, 'SIGUSR2');
      agent3 = await handedOver(agentLog, agent2);
      successors.push(agent3);
      await gone(agent2);
    });
    const proxy2 = await proxies.started(2);
    await step('proxy: hand-over', async () => {
      process.kill(proxy2, 'SIGUSR2');
      successors.push(await handedOver(proxyLog, proxy2));
      await gone(proxy2);
    });
    await step('agent: hand-over again', async () => {
      process.kill(agent3, 'SIGUSR2');
      successors.push(await handedOver(agentLog, agent3));
      await gone(agent3);
    });
    await load.succeeded(load.ok() + 150);
  } catch (err) {
    const tail = (f: string) => {
      try {
        return readFileSync(f, 'utf8').slice(-3000);
      } catch {
        return '(none)';
      }
    };
    throw new Error(
      `${(err as Error).message}\n--- agent log ---\n${tail(agentLog)}\n--- proxy log ---\n${tail(proxyLog)}\n--- holders ---\n${agents.child.output().slice(-2000)}\n${proxies.child.output().slice(-2000)}`,
    );
  } finally {
    summary = await load.finish();
  }

  for (const w of windows)
    t.diagnostic(
      `${w.what}: ${w.to - w.from} ms, ${answeredBetween(summary, w.from, w.to)} answered meanwhile`,
    );
  const retried = logFileLines(proxyLog).filter((l) => l.agentRetry !== undefined).length;
  t.diagnostic(
    `statuses ${JSON.stringify(summary.statuses)}; ${summary.posts.length} POSTs; proxy retries towards the agent ${retried}; client retries of idle connections the proxy closed ${summary.clientRetries}`,
  );
  assert.deepEqual(summary.failures, [], 'requests that failed');
  assert.deepEqual(Object.keys(summary.statuses), ['200']);
  assert.ok(summary.statuses['200']! >= 900, 'enough load');
  // Every POST the clients saw answered reached Nova exactly once, and nothing else did.
  assert.equal(new Set(nova.posts).size, nova.posts.length, 'a POST reached Nova twice');
  assert.deepEqual([...nova.posts].sort(), [...summary.posts].sort());
  assert.ok(summary.posts.length >= 150);
});
