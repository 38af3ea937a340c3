/*
 * [cache] serve_stale_on_outage with the agent CLI, a real RabbitMQ and neutron's own RPC server code: three
 * agents on the same lab, one with the defaults, one with stale answers on (max age 120 s, long enough
 * for a broker stop on a busy machine) and one with a max age of 2 s; a port cache of 0.2 s so that every
 * lookup asks neutron-server. While the broker is up, neutron's ports change: one is deleted, one address
 * moves to another port. Then the broker stops:
 *
 * - the default agent answers 503 for an address it had just looked up;
 * - the other serves that address from its last verified answer (log line MDA_STALE_ANSWER, counted);
 * - but not the deleted port's address, nor the moved address through the router that knew the old port
 *   (the network-mode lookup saw it on the new port), and that network-mode lookup serves the new
 *   instance, never the old one;
 * - and the short-lived agent serves nothing once its last confirmation is older than its max age.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { sleep } from '@nmp/testkit';
import { startStubNova, tempDir } from './helpers.js';
import { startAgentCli, writeStockFiles } from './rpc-agent.js';
import { LAB_PORTS, labPort, NET_A, ROUTER, startRpcLab, VM_A } from './rpc-fixture.js';

const SECRET = 'stale-secret';
const VM_C = { uuid: '44444444-cccc-4ccc-8ccc-444444444444', ip: '10.20.0.9', mac: 'fa:16:3e:20:00:09' };
const VM_C2 = '55555555-cccc-4ccc-8ccc-555555555555';
const VM_D = { uuid: '66666666-dddd-4ddd-8ddd-666666666666', ip: '10.20.0.10', mac: 'fa:16:3e:20:00:10' };
const MAX_AGE_S = 120;
const SHORT_MAX_AGE_S = 2;

const net = (ip: string) => ({ 'x-forwarded-for': ip, 'x-neutron-network-id': NET_A });
const router = (ip: string) => ({ 'x-forwarded-for': ip, 'x-neutron-router-id': ROUTER });

async function startAgent(t: TestContext, novaPort: number, url: string, lines: readonly string[]) {
  const dir = tempDir(t);
  const [conf, ini] = writeStockFiles(dir, 'devstack', {
    transportUrl: url,
    statePath: dir,
    novaHost: '127.0.0.1',
    novaPort,
    secret: SECRET,
  });
  const extra = join(dir, 'nmp.conf');
  writeFileSync(
    extra,
    `${[
      '[DEFAULT]',
      'rpc_lookup_timeout = 2',
      'port_cache_ttl = 0.2',
      'negative_cache_ttl = 0',
      '[AGENT]',
      'report_interval = 0',
      '[oslo_messaging_rabbit]',
      'rabbit_retry_interval = 0.2',
      'rabbit_interval_max = 0.5',
      ...lines,
    ].join('\n')}\n`,
  );
  return startAgentCli(
    t,
    ['--config-file', conf, '--config-file', ini, '--config-file', extra],
    join(dir, 'metadata_proxy'),
  );
}

/** The instance an answer was for (the stub Nova echoes X-Instance-ID). */
function instanceOf(body: Buffer): string {
  return (JSON.parse(body.toString()) as { instance: string }).instance;
}

test('serve_stale_on_outage: off by default; on, within max age and unless contradicted', async (t) => {
  const ports = [
    ...LAB_PORTS,
    labPort('port-vm-c', NET_A, VM_C.mac, [VM_C.ip], VM_C.uuid),
    labPort('port-vm-d', NET_A, VM_D.mac, [VM_D.ip], VM_D.uuid),
  ];
  const lab = await startRpcLab(t, { topics: ['plugin'], ports });
  if (!lab) return;
  const nova = await startStubNova(t);
  const plain = await startAgent(t, nova.port, lab.url, []);
  const stale = await startAgent(t, nova.port, lab.url, [
    '[cache]',
    'serve_stale_on_outage = true',
    `stale_max_age = ${MAX_AGE_S}`,
  ]);
  const short = await startAgent(t, nova.port, lab.url, [
    '[cache]',
    'serve_stale_on_outage = true',
    `stale_max_age = ${SHORT_MAX_AGE_S}`,
  ]);
  for (const a of [plain, stale, short])
    await a.waitForLine((l) => l.code === 'MDA_RPC_CONNECTED', 20_000, 'the broker connection');

  // Known to both: A (network mode), C through the router, D (network mode).
  for (const a of [plain, stale]) {
    for (const h of [net(VM_A.ip), router(VM_C.ip), net(VM_D.ip)]) {
      const r = await a.get(h);
      assert.equal(r.status, 200, r.body.toString());
    }
  }
  // neutron changes: D's port is deleted, C's address moves to a new port of another instance.
  await lab.server.setPorts([
    ...LAB_PORTS,
    labPort('port-vm-c2', NET_A, 'fa:16:3e:20:00:99', [VM_C.ip], VM_C2),
  ]);
  await sleep(300);
  // Seen by the stale agent's lookups: D is gone, C's address is on C2 now (through the network).
  assert.equal((await stale.get(net(VM_D.ip))).status, 404);
  const moved = await stale.get(net(VM_C.ip));
  assert.equal(moved.status, 200);
  assert.equal(instanceOf(moved.body), VM_C2);
  // A confirmed last, just before the outage.
  for (const a of [plain, stale, short]) assert.equal((await a.get(net(VM_A.ip))).status, 200);
  const confirmedAt = Date.now();

  await lab.rabbit.stop();
  for (const a of [plain, stale, short])
    await a.waitForLine((l) => l.code === 'MDA_RPC_DISCONNECTED', 10_000, 'the disconnect');
  await sleep(300); // past port_cache_ttl: nothing is answered from the short cache any more

  const off = await plain.get(net(VM_A.ip));
  assert.equal(off.status, 503, 'off by default');

  const served = await stale.get(net(VM_A.ip));
  assert.equal(served.status, 200, served.body.toString());
  assert.equal(instanceOf(served.body), VM_A.uuid);
  const line = await stale.waitForLine((l) => l.code === 'MDA_STALE_ANSWER', 5000, 'the stale line');
  assert.equal(line.level, 'warn');
  assert.equal(line.instance, VM_A.uuid);
  assert.equal(typeof line.staleAgeS, 'number');
  assert.equal(await stale.metric('nmp_port_cache_stale_answers_total'), 1);

  assert.equal((await stale.get(net(VM_D.ip))).status, 503, 'the deleted port is not served');
  assert.equal(
    (await stale.get(router(VM_C.ip))).status,
    503,
    'the moved address is not served by the old port',
  );
  const c = await stale.get(net(VM_C.ip));
  assert.equal(c.status, 200);
  assert.equal(instanceOf(c.body), VM_C2, 'the address is served as last seen: the new instance');
  assert.ok((await stale.metric('nmp_port_cache_stale_dropped_total')) >= 2);

  assert.ok(Date.now() - confirmedAt < MAX_AGE_S * 1000, 'the checks above ran within the max age');

  // Past the max age since A was last confirmed: refused (counted as too old, not as unknown).
  await sleep(Math.max(0, confirmedAt + SHORT_MAX_AGE_S * 1000 + 300 - Date.now()));
  assert.equal((await short.get(net(VM_A.ip))).status, 503, 'past stale_max_age');
  assert.equal(await short.metric('nmp_port_cache_stale_refused_total'), 1);
  assert.equal(await short.metric('nmp_port_cache_stale_answers_total'), 0);
  // The long-lived one still serves it.
  assert.equal((await stale.get(net(VM_A.ip))).status, 200);
});
