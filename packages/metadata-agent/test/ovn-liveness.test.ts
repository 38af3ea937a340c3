/*
 * Liveness in a real Southbound, as neutron-server reads it: Chassis_Private external_ids get
 * neutron:ovn-metadata-id (the id neutron's own agent computes, checked against Python's uuid5 and
 * neutron's namespace constant) and neutron:ovn-metadata-sb-cfg following SB_Global.nb_cfg, the first time
 * at once, later after neutron's random delay, coalesced; ovn-controller's own keys are left alone, an id
 * already there is kept, and a Chassis_Private created after the agent started is written when it appears.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { silentLogger } from '@nmp/common';
import { OVN_SB_SCHEMA, requireTools, sleep } from '@nmp/testkit';
import { metadataAgentId, uuid5 } from '../src/ovn/liveness.js';
import { livenessMaxDelaySeconds } from '../src/ovn/options.js';
import { OvnMetadataService } from '../src/ovn/ovn-service.js';
import { agentConfig, sbOps, startSouthbound, until } from './ovn-helpers.js';

const ID_KEY = 'neutron:ovn-metadata-id';
const CFG_KEY = 'neutron:ovn-metadata-sb-cfg';
const PYTHON = '/usr/bin/python3';

async function externalIds(
  sb: Awaited<ReturnType<typeof startSouthbound>>,
  name: string,
): Promise<Record<string, string>> {
  const [r] = (await sb.transact([
    { op: 'select', table: 'Chassis_Private', where: [['name', '==', name]], columns: ['external_ids'] },
  ])) as { rows: { external_ids: ['map', [string, string][]] }[] }[];
  return Object.fromEntries(r?.rows[0]?.external_ids[1] ?? []);
}

test("the agent id is neutron's: uuid5(chassis uuid or uuid5(namespace, name), 'metadata_agent')", (t) => {
  const py = spawnSync(PYTHON, ['-c', 'import neutron.agent.ovn.metadata.agent'], { encoding: 'utf8' });
  if (py.error || py.status !== 0) {
    if (process.getuid?.() === 0)
      assert.fail(`python3-neutron is needed (apt-get install python3-neutron): ${py.stderr}`);
    t.skip('python3-neutron is not installed');
    return;
  }
  const names = ['6a3f2b7e-1c5d-4e8f-9a0b-1c2d3e4f5a6b', 'compute-07.example.org', 'hv1'];
  const r = spawnSync(
    PYTHON,
    [
      '-c',
      [
        'import sys, uuid',
        'from neutron.agent.ovn.metadata.agent import OVN_METADATA_UUID_NAMESPACE as NS',
        'for name in sys.argv[1:]:',
        '    try:',
        '        cid = uuid.UUID(name)',
        '    except ValueError:',
        '        cid = uuid.uuid5(NS, name)',
        "    print(uuid.uuid5(cid, 'metadata_agent'))",
      ].join('\n'),
      ...names,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(names.map(metadataAgentId), r.stdout.trim().split('\n'));
  assert.equal(
    uuid5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'python.org'),
    '886313e1-3b8a-5372-9b90-0c9aee199e5d',
  );
});

test("neutron's delay bound: min(max(agent_down_time // 3, 3), 10) seconds", () => {
  assert.equal(livenessMaxDelaySeconds(75), 10);
  assert.equal(livenessMaxDelaySeconds(9), 3);
  assert.equal(livenessMaxDelaySeconds(1), 3);
  assert.equal(livenessMaxDelaySeconds(20), 6);
});

test('Chassis_Private follows SB_Global.nb_cfg: at once, then after the random delay, coalesced', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovsdb-client'], [OVN_SB_SCHEMA])) return;
  const sb = await startSouthbound(t);
  await sb.transact([...sbOps.chassis('hv1'), sbOps.global(5)]);
  // ovn-controller's own key, which must survive.
  await sb.transact([
    {
      op: 'mutate',
      table: 'Chassis_Private',
      where: [['name', '==', 'hv1']],
      mutations: [['external_ids', 'insert', ['map', [['ovn-ctl-key', 'x']]]]],
    },
  ]);
  const svc = new OvnMetadataService({
    // agent_down_time 9: writes after the first wait a whole number of seconds in [0, 3].
    config: agentConfig({
      'ovn-sb-connection': sb.server.unixRemote,
      'ovn-chassis-name': 'hv1',
      'agent-down-time': 9,
    }),
    logger: silentLogger(),
    random: () => 0.99,
  });
  t.after(() => svc.close());
  await svc.start();
  await until('the first write', async () => (await externalIds(sb, 'hv1'))[CFG_KEY] === '5');
  const ids = await externalIds(sb, 'hv1');
  assert.equal(ids[ID_KEY], metadataAgentId('hv1'));
  assert.equal(ids['ovn-ctl-key'], 'x');

  const bumped = Date.now();
  await sb.transact([sbOps.setNbCfg(6)]);
  await sleep(1500);
  assert.equal((await externalIds(sb, 'hv1'))[CFG_KEY], '5', 'not before the delay (3 s with random 0.99)');
  // Another bump during the delay: one write, with the latest value.
  const writes = svc.liveness!.stats.writes;
  await sb.transact([sbOps.setNbCfg(7)]);
  await until('the delayed write', async () => (await externalIds(sb, 'hv1'))[CFG_KEY] === '7', 6000);
  const waited = Date.now() - bumped;
  assert.ok(waited >= 2900, `written after ${waited} ms`);
  assert.equal(svc.liveness!.stats.writes, writes + 1, 'coalesced into one write');
  assert.equal((await externalIds(sb, 'hv1'))['ovn-ctl-key'], 'x');
  // neutron-server's rule: alive when nb_cfg - ours <= 1.
  const [g] = (await sb.transact([{ op: 'select', table: 'SB_Global', where: [], columns: ['nb_cfg'] }])) as {
    rows: { nb_cfg: number }[];
  }[];
  assert.ok(g!.rows[0]!.nb_cfg - Number((await externalIds(sb, 'hv1'))[CFG_KEY]) <= 1);
});

test('an id already there is kept; a Chassis_Private that appears later is written', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovsdb-client'], [OVN_SB_SCHEMA])) return;
  const sb = await startSouthbound(t);
  await sb.transact([sbOps.global(3), ...sbOps.chassis('hv1')]);
  await sb.transact([
    {
      op: 'mutate',
      table: 'Chassis_Private',
      where: [['name', '==', 'hv1']],
      mutations: [['external_ids', 'insert', ['map', [[ID_KEY, 'id-from-before']]]]],
    },
  ]);
  const start = (name: string) => {
    const svc = new OvnMetadataService({
      config: agentConfig({ 'ovn-sb-connection': sb.server.unixRemote, 'ovn-chassis-name': name }),
      logger: silentLogger(),
      random: () => 0,
    });
    t.after(() => svc.close());
    return svc.start().then(() => svc);
  };
  await start('hv1');
  await until('the write', async () => (await externalIds(sb, 'hv1'))[CFG_KEY] === '3');
  assert.equal((await externalIds(sb, 'hv1'))[ID_KEY], 'id-from-before');

  // hv2's agent starts before its ovn-controller registered the chassis.
  const late = await start('hv2');
  await until('the connection', () => late.southbound?.connected === true);
  assert.match(late.health() ?? '', /not registered/);
  await sb.transact(sbOps.chassis('hv2'));
  await until('the late write', async () => (await externalIds(sb, 'hv2'))[CFG_KEY] === '3');
  assert.equal((await externalIds(sb, 'hv2'))[ID_KEY], metadataAgentId('hv2'));
  await until('health', () => late.health() === undefined);
});
