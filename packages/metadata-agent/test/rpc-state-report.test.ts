/*
 * State reports as neutron-server receives them (neutron's own AgentExtRpcCallback, which parses the
 * time and hands the state to the core plugin): the first report carries start_flag and is a call, the
 * rest are casts without it, one every report_interval; the payload has neutron's keys (binary, host,
 * topic, agent_type, configurations with neutron's four keys plus our version and resolver) and a new
 * uuid each time; log_agent_heartbeats is sent and makes every report an info line; report_interval = 0
 * sends none.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captureLogs, type ReportEvent, sleep, waitUntil } from '@nmp/testkit';
import { startRpcLab } from './rpc-fixture.js';

test('report_state: call with start_flag, then casts every report_interval, with neutron keys', async (t) => {
  const lab = await startRpcLab(t, { topics: ['reports'] });
  if (!lab) return;
  const { logger, lines } = captureLogs();
  const rpc = lab.parts(t, logger, [
    '[DEFAULT]',
    'host = compute-42',
    '[AGENT]',
    'report_interval = 1',
    'log_agent_heartbeats = true',
  ]);
  const from = lab.server.reports().length;
  rpc.reporter!.start();
  await waitUntil(() => lab.server.reports().length >= from + 4, 15_000, 'four reports');
  rpc.reporter!.stop();
  const reports = lab.server.reports().slice(from, from + 4) as ReportEvent[];

  const [first, ...rest] = reports as [ReportEvent, ...ReportEvent[]];
  assert.deepEqual(first.agent_state, {
    binary: 'neutron-metadata-agent',
    host: 'compute-42',
    topic: 'N/A',
    configurations: {
      metadata_proxy_socket: '/run/test.sock',
      nova_metadata_host: '127.0.0.1',
      nova_metadata_port: 8775,
      log_agent_heartbeats: true,
      nmp_version: 'test',
      nmp_resolver: 'rpc',
    },
    start_flag: true,
    agent_type: 'Metadata agent',
    uuid: first.agent_state.uuid,
  });
  for (const r of rest) {
    assert.equal(r.agent_state.start_flag, undefined);
    assert.equal(r.agent_state.host, 'compute-42');
    assert.equal(r.agent_state.agent_type, 'Metadata agent');
  }
  const uuids = new Set(reports.map((r) => r.agent_state.uuid));
  assert.equal(uuids.size, 4, 'a new uuid per report');
  for (const u of uuids) assert.match(String(u), /^[0-9a-f-]{36}$/);
  // neutron-server parsed our time stamp (it ignores reports it cannot date).
  for (const r of reports) assert.match(r.time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+$/);
  // One report a second, measured where neutron received them.
  // (Each gap may jitter with the machine's load; the mean may not.)
  const gaps = reports.slice(1).map((r, i) => r.t - reports[i]!.t);
  const mean = (reports.at(-1)!.t - reports[0]!.t) / gaps.length;
  assert.ok(mean > 0.85 && mean < 1.25, `mean gap ${mean.toFixed(3)} s (${gaps.map((g) => g.toFixed(2))})`);
  for (const g of gaps) assert.ok(g > 0.3 && g < 2, `gap ${g.toFixed(3)} s`);

  // Call first (neutron answered 'new'), then casts; log_agent_heartbeats logs each at info.
  const ours = lines().filter((l) => l.code === 'MDA_RPC_STATE_REPORTED');
  assert.equal(ours[0]!.kind, 'call');
  assert.equal(ours[0]!.status, 'new');
  assert.ok(
    ours.slice(1).every((l) => l.kind === 'cast' && l.level === 'info'),
    JSON.stringify(ours),
  );
  assert.equal(rpc.reporter!.stats.failures, 0);

  await t.test('report_interval = 0 sends no report', async () => {
    const quiet = lab.parts(t, captureLogs().logger, ['[AGENT]', 'report_interval = 0']);
    assert.equal(quiet.reporter, undefined);
    await waitUntil(() => quiet.broker.connected, 20_000, 'connection');
    const before = lab.server.reports().length;
    await sleep(1500);
    assert.equal(lab.server.reports().length, before);
  });
});
