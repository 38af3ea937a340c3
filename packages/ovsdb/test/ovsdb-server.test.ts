/*
 * The client against a real ovsdb-server serving Debian's OVN Southbound schema: get_schema, transact,
 * monitor updates (inserts, map mutations, deletes, condition changes), the fallback to plain monitor,
 * keep-alive against the server, and reconnection with resync after the server restarts (with changes
 * made while it was down).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  freeLowPort,
  OVN_SB_SCHEMA,
  OvsdbServer,
  requireTools,
  runCommand,
  sbOps,
  sleep,
  until,
} from '@nmp/testkit';
import { OvsdbClient } from '../src/client.js';
import type { Row } from '../src/data.js';
import { TransactionError } from '../src/errors.js';
import type { ChangeKind, Replica, RowChange } from '../src/replica.js';

const DB = 'OVN_Southbound';

function client(
  remotes: string,
  extra: Partial<ConstructorParameters<typeof OvsdbClient>[0]> = {},
): OvsdbClient {
  const c = new OvsdbClient({ remotes, database: DB, backoffMinMs: 100, backoffMaxMs: 400, ...extra });
  c.start();
  return c;
}

/** Collect change batches of a replica. */
function recorder(replica: Replica): { batches: { kind: ChangeKind; changes: readonly RowChange[] }[] } {
  const r = { batches: [] as { kind: ChangeKind; changes: readonly RowChange[] }[] };
  replica.onChange((changes, kind) => r.batches.push({ kind, changes }));
  return r;
}

function byName(replica: Replica, table: string, column: string, value: string): Row | undefined {
  for (const row of replica.table(table).values()) if (row[column] === value) return row;
  return undefined;
}

test('get_schema, transact and monitor updates on a real Southbound', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool'], [OVN_SB_SCHEMA])) return;
  const server = await OvsdbServer.start(t);
  const c = client(server.unixRemote);
  t.after(() => c.close());
  const replica = c.monitor({
    Chassis: { columns: ['name', 'hostname', 'external_ids'] },
    Port_Binding: { columns: ['logical_port', 'type', 'datapath', 'chassis', 'mac', 'external_ids'] },
    Datapath_Binding: {},
    No_Such_Table: {},
  });
  const rec = recorder(replica);
  await c.ready(10_000);
  assert.equal(c.stats.monitorMethod, 'monitor_cond_since');
  assert.equal(c.schema?.name, DB);
  assert.ok(c.schema?.tables.has('Port_Binding'));
  assert.deepEqual(replica.missing, ['No_Such_Table']);
  assert.equal(replica.synced, true);
  assert.equal(rec.batches[0]?.kind, 'snapshot');

  const net = 'aaaaaaaa-0000-4000-8000-000000000001';
  const result = await c.transact([
    ...sbOps.chassis('hv1'),
    sbOps.network(net, 1, { uuidName: 'dp' }),
    sbOps.port({
      id: 'port-1',
      datapath: ['named-uuid', 'dp'],
      tunnelKey: 1,
      mac: 'fa:16:3e:00:00:01',
      ips: ['10.0.0.5', '2001:db8::5'],
      deviceId: 'vm-1',
      projectId: 'proj-1',
      networkId: net,
      chassis: ['named-uuid', 'ch_hv1'],
    }),
  ]);
  assert.equal(result.length, 5);
  // The server sends the update before the transaction's reply (ovsdb-server(7) §4.1.5).
  const pb = byName(replica, 'Port_Binding', 'logical_port', 'port-1');
  assert.ok(pb, 'the new port is in the replica when transact resolves');
  const chassis = byName(replica, 'Chassis', 'name', 'hv1')!;
  assert.deepEqual(pb.chassis, [chassis._uuid]);
  assert.deepEqual(pb.mac, ['fa:16:3e:00:00:01 10.0.0.5 2001:db8::5']);
  assert.equal((pb.external_ids as ReadonlyMap<string, string>).get('neutron:device_id'), 'vm-1');
  assert.equal(replica.table('Datapath_Binding').get(pb.datapath as string)?.['tunnel_key'], 1);
  const inserted = rec.batches.at(-1)!;
  assert.equal(inserted.kind, 'update');
  assert.equal(
    inserted.changes.length,
    3,
    'one batch: the whole transaction (Encap and Chassis_Private are not monitored)',
  );

  // A map mutation arrives as an update2 diff and is applied exactly.
  await c.transact([
    {
      op: 'mutate',
      table: 'Port_Binding',
      where: [['logical_port', '==', 'port-1']],
      mutations: [
        ['external_ids', 'delete', ['set', ['neutron:device_id']]],
        [
          'external_ids',
          'insert',
          [
            'map',
            [
              ['neutron:device_id', 'vm-2'],
              ['extra', 'x'],
            ],
          ],
        ],
      ],
    },
  ]);
  const pb2 = byName(replica, 'Port_Binding', 'logical_port', 'port-1')!;
  assert.equal((pb2.external_ids as ReadonlyMap<string, string>).get('neutron:device_id'), 'vm-2');
  assert.equal((pb2.external_ids as ReadonlyMap<string, string>).get('extra'), 'x');
  assert.equal((pb2.external_ids as ReadonlyMap<string, string>).get('neutron:project_id'), 'proj-1');
  const modified = rec.batches.at(-1)!.changes[0]!;
  assert.equal(modified.old, pb, 'the change carries the previous row');
  assert.equal(modified.new, pb2);
  assert.equal(
    (pb.external_ids as ReadonlyMap<string, string>).get('neutron:device_id'),
    'vm-1',
    'old rows do not change',
  );

  // Unbinding clears an optional column.
  await c.transact([sbOps.bind('port-1', undefined)]);
  assert.deepEqual(byName(replica, 'Port_Binding', 'logical_port', 'port-1')!.chassis, []);

  await c.transact([sbOps.deletePort('port-1')]);
  assert.equal(byName(replica, 'Port_Binding', 'logical_port', 'port-1'), undefined);
  assert.equal(rec.batches.at(-1)!.changes[0]!.new, undefined);

  // A failing operation rejects with the server's results.
  await assert.rejects(
    c.transact([{ op: 'insert', table: 'Chassis', row: { name: 'x', encaps: ['set', []] } }]),
    (e: unknown) => e instanceof TransactionError && e.code === 'OVSDB_ERR_TRANSACTION',
  );
});

test('conditional monitoring: the server sends only matching rows; conditions can change', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool'], [OVN_SB_SCHEMA])) return;
  const server = await OvsdbServer.start(t);
  const c = client(server.unixRemote);
  t.after(() => c.close());
  const net = 'bbbbbbbb-0000-4000-8000-000000000001';
  await c.ready();
  const created = (await c.transact([
    ...sbOps.chassis('hv1'),
    ...sbOps.chassis('hv2'),
    sbOps.network(net, 1, { uuidName: 'dp' }),
  ])) as { uuid?: [string, string] }[];
  const dp = created.at(-1);
  const hv = async (name: string) =>
    (
      (await c.transact([
        { op: 'select', table: 'Chassis', where: [['name', '==', name]], columns: ['_uuid'] },
      ])) as {
        rows: { _uuid: [string, string] }[];
      }[]
    )[0]!.rows[0]!._uuid;
  const hv1 = await hv('hv1');
  const hv2 = await hv('hv2');
  const port = (id: string, key: number, chassis: [string, string] | undefined) =>
    sbOps.port({
      id,
      datapath: dp!.uuid!,
      tunnelKey: key,
      mac: `fa:16:3e:00:00:0${key}`,
      ips: [`10.0.0.${key}`],
      networkId: net,
      ...(chassis ? { chassis } : {}),
    });
  await c.transact([port('on-hv1', 1, hv1), port('on-hv2', 2, hv2), port('localport', 3, undefined)]);

  const mine = c.monitor({
    Port_Binding: {
      columns: ['logical_port', 'chassis'],
      where: [
        ['chassis', '==', hv1],
        ['type', '==', 'localport'],
      ],
    },
  });
  const rec = recorder(mine);
  await until('the monitor', () => mine.synced);
  // 'localport' has type "" here, so only the bound one matches.
  assert.deepEqual(
    [...mine.table('Port_Binding').values()].map((r) => r.logical_port),
    ['on-hv1'],
  );

  // Binding moves between chassis: the row leaves and enters the condition.
  await c.transact([sbOps.bind('on-hv1', hv2), sbOps.bind('on-hv2', hv1)]);
  assert.deepEqual(
    [...mine.table('Port_Binding').values()].map((r) => r.logical_port),
    ['on-hv2'],
  );
  const moved = rec.batches.at(-1)!.changes;
  assert.deepEqual(moved.map((ch) => [ch.old?.logical_port ?? null, ch.new?.logical_port ?? null]).sort(), [
    [null, 'on-hv2'],
    ['on-hv1', null],
  ]);

  // A condition change: the server sends the difference.
  await c.setWhere(mine, 'Port_Binding', [['chassis', '==', hv2]]);
  assert.deepEqual(
    [...mine.table('Port_Binding').values()].map((r) => r.logical_port),
    ['on-hv1'],
  );
  await c.setWhere(mine, 'Port_Binding', undefined);
  assert.equal(mine.table('Port_Binding').size, 3);
});

test('mapKeys keeps only the named keys, and diffs stay exact for them', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool'], [OVN_SB_SCHEMA])) return;
  const server = await OvsdbServer.start(t);
  const c = client(server.unixRemote);
  t.after(() => c.close());
  const replica = c.monitor({
    SB_Global: { columns: ['external_ids'], mapKeys: { external_ids: ['a', 'b'] } },
  });
  await c.ready();
  await c.transact([
    {
      op: 'insert',
      table: 'SB_Global',
      row: {
        external_ids: [
          'map',
          [
            ['a', '1'],
            ['z', '26'],
          ],
        ],
      },
    },
  ]);
  const ext = () => [...replica.table('SB_Global').values()][0]!.external_ids as ReadonlyMap<string, string>;
  assert.deepEqual([...ext()], [['a', '1']]);
  const mutate = (mutations: unknown[]) =>
    c.transact([{ op: 'mutate', table: 'SB_Global', where: [], mutations }]);
  await mutate([['external_ids', 'delete', ['set', ['z']]]]);
  await mutate([
    [
      'external_ids',
      'insert',
      [
        'map',
        [
          ['b', '2'],
          ['y', '25'],
        ],
      ],
    ],
  ]);
  assert.deepEqual([...ext()].sort(), [
    ['a', '1'],
    ['b', '2'],
  ]);
  await mutate([['external_ids', 'delete', ['set', ['a']]]]);
  assert.deepEqual([...ext()], [['b', '2']]);
});

test('plain monitor when the server has monitor_cond disabled: same rows, filtered here', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovs-appctl'], [OVN_SB_SCHEMA])) return;
  const server = await OvsdbServer.start(t);
  await server.appctl(['ovsdb-server/disable-monitor-cond']);
  await server.transact(DB, [...sbOps.chassis('hv1'), ...sbOps.chassis('hv2')]);
  const c = client(server.unixRemote);
  t.after(() => c.close());
  const replica = c.monitor({ Chassis: { columns: ['name'], where: [['name', '==', 'hv2']] } });
  await c.ready();
  assert.equal(c.stats.monitorMethod, 'monitor');
  assert.deepEqual(
    [...replica.table('Chassis').values()].map((r) => r.name),
    ['hv2'],
  );
  await c.transact([
    { op: 'update', table: 'Chassis', where: [['name', '==', 'hv1']], row: { hostname: 'h' } },
  ]);
  await c.transact(sbOps.chassis('hv3').slice(0, 2));
  assert.deepEqual(
    [...replica.table('Chassis').values()].map((r) => r.name),
    ['hv2'],
  );
  await c.setWhere(replica, 'Chassis', [['name', '!=', 'hv2']]);
  assert.deepEqual([...replica.table('Chassis').values()].map((r) => r.name).sort(), ['hv1', 'hv3']);
});

test('reconnects after the server restarts and resyncs what changed while it was down', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool'], [OVN_SB_SCHEMA])) return;
  const server = await OvsdbServer.start(t, { tcpPort: await freeLowPort() });
  await server.transact(DB, [
    ...sbOps.chassis('stays'),
    ...sbOps.chassis('goes'),
    ...sbOps.chassis('changes'),
  ]);
  const c = client(server.tcpRemote);
  t.after(() => c.close());
  const states: string[] = [];
  c.on('state', (s) => states.push(s));
  const replica = c.monitor({ Chassis: { columns: ['name', 'hostname'] } });
  await c.ready();
  assert.equal(replica.table('Chassis').size, 3);
  const rec = recorder(replica);

  await server.stopProcess();
  await until('the client to notice', () => !c.connected);
  assert.equal(replica.table('Chassis').size, 3, 'the copy stays readable while the server is away');
  // Change the database file while nothing serves it.
  await runCommand(undefined, 'ovsdb-tool', [
    'transact',
    server.dbFile,
    JSON.stringify([
      DB,
      { op: 'delete', table: 'Chassis', where: [['name', '==', 'goes']] },
      { op: 'update', table: 'Chassis', where: [['name', '==', 'changes']], row: { hostname: 'new-host' } },
      ...sbOps.chassis('arrives').slice(0, 2),
    ]),
  ]);
  await server.startProcess();
  await c.ready(15_000);
  assert.ok(c.stats.connects >= 2);
  assert.ok(states.includes('waiting') || states.includes('connecting'));
  const names = [...replica.table('Chassis').values()].map((r) => r.name).sort();
  assert.deepEqual(names, ['arrives', 'changes', 'stays']);
  assert.equal(byName(replica, 'Chassis', 'name', 'changes')!.hostname, 'new-host');
  // The listeners saw exactly the difference, not a reload of everything.
  const changes = rec.batches.flatMap((b) => b.changes);
  assert.deepEqual(
    changes.map((ch) => `${ch.old ? 'old' : '-'}:${ch.new ? 'new' : '-'}:${(ch.new ?? ch.old)!.name}`).sort(),
    ['-:new:arrives', 'old:-:goes', 'old:new:changes'],
  );
  // And it goes on working.
  await c.transact(sbOps.chassis('later').slice(0, 2));
  assert.ok(byName(replica, 'Chassis', 'name', 'later'));
});

test('a server killed without a goodbye is noticed by the echo probe', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool'], [OVN_SB_SCHEMA])) return;
  const server = await OvsdbServer.start(t, { tcpPort: 0 });
  const c = client(server.tcpRemote, { probeIntervalMs: 300 });
  t.after(() => c.close());
  c.monitor({ SB_Global: {} });
  await c.ready();
  // Keep-alive in both directions over several intervals: the session stays up.
  const connects = c.stats.connects;
  await sleep(1500);
  assert.equal(c.connected, true);
  assert.equal(c.stats.connects, connects, 'no reconnection while the server answers echoes');
  // SIGSTOP: the TCP connection stays open but nothing answers.
  process.kill(server.pid!, 'SIGSTOP');
  t.after(() => {
    if (server.pid) process.kill(server.pid, 'SIGCONT');
  });
  await until('the probe to declare the server dead', () => !c.connected, 5_000);
  assert.match(c.stats.lastError ?? '', /echo unanswered|no message/);
  process.kill(server.pid!, 'SIGCONT');
  await c.ready(10_000);
});

test('conditions changed before connecting, and several changes at once: the last one wins', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool'], [OVN_SB_SCHEMA])) return;
  const server = await OvsdbServer.start(t);
  await server.transact(DB, [
    ...sbOps.chassis('a'),
    ...sbOps.chassis('b'),
    ...sbOps.chassis('c'),
    ...sbOps.chassis('d'),
  ]);
  const c = new OvsdbClient({ remotes: server.unixRemote, database: DB });
  t.after(() => c.close());
  const replica = c.monitor({ Chassis: { columns: ['name'], where: [['name', '==', 'a']] } });
  await c.setWhere(replica, 'Chassis', [['name', '==', 'b']]);
  c.start();
  await c.ready();
  const names = () => [...replica.table('Chassis').values()].map((r) => r.name).sort();
  assert.deepEqual(names(), ['b']);
  await Promise.all([
    c.setWhere(replica, 'Chassis', [['name', '==', 'c']]),
    c.setWhere(replica, 'Chassis', [['name', '==', 'd']]),
    c.setWhere(replica, 'Chassis', [
      ['name', '==', 'a'],
      ['name', '==', 'd'],
    ]),
  ]);
  assert.deepEqual(names(), ['a', 'd']);
  assert.equal(c.stats.connects, 1, 'no reload needed');
});
