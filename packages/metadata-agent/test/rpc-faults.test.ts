/*
 * Faults of resolver = rpc, with the agent CLI started from stock devstack files (plus short timings in a
 * third file) against a real RabbitMQ node and neutron's own RPC server code:
 *
 * - neutron-server not consuming (SIGSTOP): a new address gets 503 MDA_ERR_RPC_TIMEOUT within the deadline,
 *   a cached one is still served;
 * - broker stopped: an uncached lookup 503 MDA_ERR_RPC_UNAVAILABLE within 0.6 s (fail fast while the
 *   connection is known down), cache hits still 200, /readyz not ready, failed reports counted, the
 *   process alive; broker started again: lookups and reports resume without touching the agent
 *   (reconnects counted);
 * - a wrong password: one error line without the password, retried (failures counted), 503 meanwhile;
 * - fail-over: the first host of transport_url refuses, the second serves;
 * - a network cut (a TCP relay that stops forwarding): heartbeats notice, the agent moves to the next host.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { freeLowPort, sleep, waitUntil } from '@nmp/testkit';
import { startStubNova, tempDir } from './helpers.js';
import { type AgentProc, startAgentCli, writeStockFiles } from './rpc-agent.js';
import { NET_A, NET_B, RPC_PASSWORD, RPC_USER, startRpcLab, VM_A, VM_B } from './rpc-fixture.js';

const SECRET = 'fault-secret';
const DEADLINE_S = 2;
const TIMINGS = [
  '[DEFAULT]',
  `rpc_lookup_timeout = ${DEADLINE_S}`,
  'port_cache_ttl = 300',
  '[AGENT]',
  'report_interval = 1',
  '[oslo_messaging_rabbit]',
  'heartbeat_timeout_threshold = 2',
  'rabbit_retry_interval = 0.2',
  'rabbit_retry_backoff = 0.2',
  'rabbit_interval_max = 0.5',
];

const vmA = { 'x-forwarded-for': VM_A.ip, 'x-neutron-network-id': NET_A };
const vmB = { 'x-forwarded-for': VM_B.ip, 'x-neutron-network-id': NET_B };

async function startAgent(t: TestContext, novaPort: number, transportUrl: string, extra: string[] = []) {
  const dir = tempDir(t);
  const [conf, ini] = writeStockFiles(dir, 'devstack', {
    transportUrl,
    statePath: dir,
    novaHost: '127.0.0.1',
    novaPort,
    secret: SECRET,
  });
  const timings = join(dir, 'nmp-timings.conf');
  writeFileSync(timings, `${[...TIMINGS, ...extra].join('\n')}\n`);
  return startAgentCli(
    t,
    ['--config-file', conf, '--config-file', ini, '--config-file', timings],
    join(dir, 'metadata_proxy'),
  );
}

async function timed(agent: AgentProc, headers: Record<string, string>) {
  const t0 = Date.now();
  const res = await agent.get(headers);
  return { res, ms: Date.now() - t0 };
}

test('broker and neutron-server faults: deadline, cache, readiness, recovery, credentials, fail-over, cuts', async (t) => {
  const lab = await startRpcLab(t);
  if (!lab) return;
  const nova = await startStubNova(t);
  const agent = await startAgent(t, nova.port, lab.url);
  await agent.waitForLine((l) => l.code === 'MDA_RPC_CONNECTED', 20_000, 'the broker connection');
  const warm = await agent.get(vmA);
  assert.equal(warm.status, 200, warm.body.toString());

  await t.test('neutron-server not consuming: 503 at the deadline, cached answers still served', async () => {
    lab.server.pause();
    try {
      const { res, ms } = await timed(agent, vmB);
      assert.equal(res.status, 503);
      assert.ok(ms >= DEADLINE_S * 1000 - 100 && ms < DEADLINE_S * 1000 + 1500, `answered after ${ms} ms`);
      await agent.waitForLine((l) => l.code === 'MDA_ERR_RPC_TIMEOUT', 5000, 'the timeout line');
      const cached = await timed(agent, vmA);
      assert.equal(cached.res.status, 200);
      assert.ok(cached.ms < 500, `cache hit took ${cached.ms} ms`);
    } finally {
      lab.server.resume();
    }
    await waitUntil(
      async () => (await agent.get(vmB)).status === 200,
      20_000,
      'lookups after the server resumed',
    );
  });

  await t.test(
    'broker stopped: uncached 503 within 0.6 s, cache hits served, not ready, reports fail',
    async () => {
      const reportsBefore = await agent.metric('nmp_state_reports_total', 'result="success"');
      assert.ok(reportsBefore >= 1, `reports so far: ${reportsBefore}`);
      await lab.rabbit.stop();
      await agent.waitForLine((l) => l.code === 'MDA_RPC_DISCONNECTED', 10_000, 'the disconnect line');
      const fresh = { 'x-forwarded-for': '10.20.0.77', 'x-neutron-network-id': NET_A };
      // Known down: 503 at once (after lookup_outage_grace, 0.25 s), not at rpc_lookup_timeout.
      for (const ip of ['10.20.0.77', '10.20.0.78']) {
        const { res, ms } = await timed(agent, { ...fresh, 'x-forwarded-for': ip });
        assert.equal(res.status, 503);
        assert.ok(ms <= 600, `uncached lookup answered after ${ms} ms`);
        assert.match(res.body.toString(), /temporarily unavailable/);
      }
      await agent.waitForLine(
        (l) => l.code === 'MDA_ERR_RPC_UNAVAILABLE' && l.failedFast === true,
        5000,
        'the unavailable line, marked failedFast',
      );
      for (const h of [vmA, vmB])
        assert.equal((await agent.get(h)).status, 200, 'cache hit during the outage');
      const ready = await agent.admin('/readyz');
      assert.equal(ready.status, 503);
      assert.match(ready.body.toString(), /no connection to RabbitMQ \(rabbit:\/\/nmp-agent:\*\*\*\*@/);
      assert.equal(await agent.metric('nmp_rpc_connected'), 0);
      await waitUntil(
        async () => (await agent.metric('nmp_state_reports_total', 'result="failure"')) >= 1,
        5000,
        'a failed report',
      );
      assert.equal(agent.child.exitCode, null, 'the agent is still running');
    },
  );

  await t.test('broker started again: lookups and reports resume by themselves', async () => {
    const restartedAt = Date.now() / 1000;
    await lab.rabbit.start();
    await agent.waitForLine(
      (l) => l.code === 'MDA_RPC_CONNECTED' && /again/.test(String(l.msg)),
      30_000,
      'the reconnection',
    );
    // neutron-server (oslo.messaging) reconnects on its own schedule: poll.
    const other = { 'x-forwarded-for': '10.20.0.2', 'x-neutron-network-id': NET_A };
    await waitUntil(
      async () => (await agent.get(other)).status !== 503,
      45_000,
      'a lookup after the restart',
    );
    assert.ok((await agent.metric('nmp_rpc_reconnects_total')) >= 1);
    assert.equal(await agent.metric('nmp_rpc_connected'), 1);
    await lab.server.waitFor((e) => e.event === 'report_state' && (e.t as number) > restartedAt, 30_000);
    await waitUntil(async () => (await agent.admin('/readyz')).status === 200, 30_000, 'ready again');
  });

  await t.test('a wrong password: one clear error line without it, retried, 503 meanwhile', async (t2) => {
    const wrong = `${RPC_PASSWORD}-wrong`;
    const bad = await startAgent(t2, nova.port, lab.rabbit.url(RPC_USER, wrong));
    await waitUntil(
      async () => (await bad.metric('nmp_rpc_connection_failures_total')) >= 3,
      15_000,
      'three attempts',
    );
    const errors = bad.lines().filter((l) => l.code === 'MDA_RPC_CONNECT_FAILED' && l.level === 'error');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.match(String(errors[0]!.reason), /ACCESS[-_]REFUSED/);
    assert.match(String(errors[0]!.hint), /user or password/);
    const res = await bad.get(vmA);
    assert.equal(res.status, 503);
    assert.equal(bad.child.exitCode, null);
    await bad.stop();
    for (const s of [wrong, encodeURIComponent(wrong), RPC_PASSWORD, 'p@ss:w0rd'])
      assert.ok(!bad.text().includes(s), `'${s}' in the log`);
  });

  await t.test('fail-over: the first host refuses, the second serves', async (t2) => {
    const closed = await freeLowPort();
    const url = lab.url.replace(
      '@127.0.0.1:',
      `@127.0.0.1:${closed},${encodeURIComponent(RPC_USER)}:${encodeURIComponent(RPC_PASSWORD)}@127.0.0.1:`,
    );
    const fo = await startAgent(t2, nova.port, url);
    const up = await fo.waitForLine((l) => l.code === 'MDA_RPC_CONNECTED', 20_000, 'a connection');
    assert.equal(up.host, `127.0.0.1:${lab.rabbit.port}`);
    const failed = fo.lines().find((l) => l.code === 'MDA_RPC_CONNECT_FAILED');
    assert.equal(failed?.host, `127.0.0.1:${closed}`);
    assert.match(String(failed?.reason), /ECONNREFUSED/);
    assert.equal(
      (await fo.get({ 'x-forwarded-for': '10.30.0.1', 'x-neutron-network-id': NET_B })).status,
      200,
    );
  });

  await t.test('a network cut: heartbeats notice it and the agent moves to the next host', async (t2) => {
    const relay = await startRelay(t2, lab.rabbit.port);
    const cred = `${encodeURIComponent(RPC_USER)}:${encodeURIComponent(RPC_PASSWORD)}`;
    const url = `rabbit://${cred}@127.0.0.1:${relay.port},${cred}@127.0.0.1:${lab.rabbit.port}/`;
    const cut = await startAgent(t2, nova.port, url);
    const up = await cut.waitForLine((l) => l.code === 'MDA_RPC_CONNECTED', 20_000, 'a connection');
    assert.equal(up.host, `127.0.0.1:${relay.port}`);
    relay.cut();
    const cutAt = Date.now();
    const down = await cut.waitForLine(
      (l) => l.code === 'MDA_RPC_DISCONNECTED',
      15_000,
      'the cut to be noticed',
    );
    const noticedMs = Date.parse(String(down.time)) - cutAt;
    assert.ok(noticedMs < 7000, `noticed after ${noticedMs} ms`);
    await cut.waitForLine(
      (l) => l.code === 'MDA_RPC_CONNECTED' && l.host === `127.0.0.1:${lab.rabbit.port}`,
      15_000,
      'the move to the second host',
    );
    const res = await cut.get({ 'x-forwarded-for': '10.30.0.1', 'x-neutron-network-id': NET_B });
    assert.equal(res.status, 200);
    await sleep(10);
  });
});

/** A TCP relay to the broker whose cut() stops forwarding without closing anything (a dead link). */
async function startRelay(t: TestContext, target: number) {
  const sockets: Socket[] = [];
  let dead = false;
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(target, '127.0.0.1');
    sockets.push(client, upstream);
    client.on('data', (d) => {
      if (!dead) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!dead) client.write(d);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const port = await freeLowPort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    port,
    cut() {
      dead = true;
    },
  };
}
