/*
 * A real three-member raft cluster of the OVN Southbound (ovsdb-tool create-cluster / join-cluster) behind a
 * comma-separated remote list: the client prefers (or requires) the leader, follows a failover when the
 * leader dies, and resumes its monitor with monitor_cond_since, receiving only what it missed instead of
 * a whole new snapshot.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OVN_SB_SCHEMA, requireTools, sbOps, sleep, startOvsdbCluster, until } from '@nmp/testkit';
import { OvsdbClient } from '../src/client.js';
import type { ChangeKind } from '../src/replica.js';

const DB = 'OVN_Southbound';

test('a clustered Southbound: leader preference, failover, resume with monitor_cond_since', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovs-appctl'], [OVN_SB_SCHEMA])) return;
  const cluster = await startOvsdbCluster(t, { size: 3 });
  const leader = (await cluster.leader(DB))!;
  const followers = cluster.members.filter((m) => m !== leader);
  // Followers first in the list, the leader last: 'prefer' must skip them, 'any' stays on the first.
  const remotes = [...followers, leader].map((m) => m.tcpRemote).join(',');

  const any = new OvsdbClient({ remotes, database: DB, leader: 'any', random: () => 0, backoffMinMs: 100 });
  any.start();
  t.after(() => any.close());
  await any.ready(15_000);
  assert.equal(any.remote, followers[0]!.tcpRemote, "'any' stays on the first member that answers");

  const c = new OvsdbClient({ remotes, database: DB, random: () => 0, backoffMinMs: 100, backoffMaxMs: 500 });
  c.start();
  t.after(() => c.close());
  const replica = c.monitor({ Chassis: { columns: ['name'] } });
  const kinds: ChangeKind[] = [];
  replica.onChange((_changes, kind) => kinds.push(kind));
  await c.ready(15_000);
  assert.equal(
    c.remote,
    leader.tcpRemote,
    "'prefer' (the default) skips followers while the leader may answer",
  );
  assert.equal(c.stats.monitorMethod, 'monitor_cond_since');

  // Writes through a follower reach everybody (the follower forwards them to the leader).
  await any.transact(sbOps.chassis('via-follower').slice(0, 2));
  await c.transact(sbOps.chassis('via-leader').slice(0, 2));
  await until('both rows', () => replica.table('Chassis').size === 2, 20_000);
  assert.deepEqual(kinds, ['snapshot', 'update', 'update']);

  // The leader dies: the client moves to a new member and resumes from its last transaction.
  await leader.kill();
  await until('a new leader', async () => (await cluster.leader(DB)) !== undefined, 20_000);
  await until('the client to reconnect', () => c.connected && c.remote !== leader.tcpRemote, 20_000);
  assert.ok(c.stats.connects >= 2);
  assert.ok(!kinds.slice(1).includes('snapshot'), `resumed, not reloaded: ${kinds.join(',')}`);
  await c.transact(sbOps.chassis('after-failover').slice(0, 2));
  await until('the new row', () => replica.table('Chassis').size === 3, 20_000);
  assert.deepEqual([...replica.table('Chassis').values()].map((r) => r.name).sort(), [
    'after-failover',
    'via-follower',
    'via-leader',
  ]);
});

test("'require' never stays on a follower", async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovs-appctl'], [OVN_SB_SCHEMA])) return;
  const cluster = await startOvsdbCluster(t, { size: 3 });
  const leader = (await cluster.leader(DB))!;
  const followers = cluster.members.filter((m) => m !== leader);
  const c = new OvsdbClient({
    remotes: followers.map((m) => m.tcpRemote).join(','),
    database: DB,
    leader: 'require',
    backoffMinMs: 100,
    backoffMaxMs: 200,
  });
  c.start();
  t.after(() => c.close());
  await sleep(1500);
  assert.equal(c.connected, false);
  assert.match(c.stats.lastError ?? '', /not the leader/);
  // With the leader in the list it connects there.
  const d = new OvsdbClient({ remotes: cluster.remotes, database: DB, leader: 'require', backoffMinMs: 100 });
  d.start();
  t.after(() => d.close());
  await d.ready(15_000);
  assert.equal(d.remote, leader.tcpRemote);
});
