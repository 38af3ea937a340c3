/*
 * The lookup index on its own, fed replica changes directly: neutron's network naming, the `mac` column's
 * forms, which bindings count in each scope (whatever the server sent: with plain monitor or scope 'all'
 * the index alone decides), and the index staying right when datapaths arrive late, are renamed, or the
 * chassis row changes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetadataError } from '@nmp/common';
import { addressesOf, networkOfDatapath } from '@nmp/ovn';
import type { Row, RowChange } from '@nmp/ovsdb';
import { PortBindingIndex } from '../src/ovn/port-index.js';

const CH_ME = '11111111-0000-4000-8000-000000000001';
const CH_OTHER = '11111111-0000-4000-8000-000000000002';
const DP = '22222222-0000-4000-8000-000000000001';
const NET = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';

const dp = (uuid: string, name: string | undefined): Row =>
  ({ _uuid: uuid, external_ids: new Map(name === undefined ? [] : [['name', name]]) }) as Row;

let n = 0;
const pb = (o: {
  ip: string;
  chassis?: string[];
  extra?: string[];
  device?: string;
  mac?: string[];
  datapath?: string;
}): Row =>
  ({
    _uuid: `33333333-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    logical_port: `port-${n}`,
    type: '',
    datapath: o.datapath ?? DP,
    chassis: o.chassis ?? [CH_ME],
    additional_chassis: o.extra ?? [],
    mac: o.mac ?? [`fa:16:3e:00:00:${n.toString(16).padStart(2, '0')} ${o.ip}`],
    external_ids: new Map([
      ['neutron:device_id', o.device ?? `vm-${n}`],
      ['neutron:project_id', 'p'],
    ]),
  }) as Row;

const insert = (table: string, row: Row): RowChange => ({ table, uuid: row._uuid, old: undefined, new: row });
const found = (index: PortBindingIndex, ip: string, mac?: string) => {
  try {
    return index.lookup(mac ? { mode: 'network', id: NET, ip, mac } : { mode: 'network', id: NET, ip })
      .instanceId;
  } catch (err) {
    return (err as MetadataError).code;
  }
};

test("neutron's network of a datapath: external_ids:name without 'neutron-'", () => {
  assert.equal(networkOfDatapath(dp(DP, `neutron-${NET}`)), NET);
  assert.equal(networkOfDatapath(dp(DP, NET)), NET, 'a name without the prefix is the id itself');
  assert.equal(networkOfDatapath(dp(DP, undefined)), undefined);
  assert.equal(networkOfDatapath(dp(DP, '')), undefined);
});

test('the mac column: every entry, MAC then addresses, other forms skipped', () => {
  assert.deepEqual(addressesOf(['FA:16:3E:00:00:01 10.0.0.5 2001:DB8::05']), {
    macs: ['fa:16:3e:00:00:01'],
    ips: ['10.0.0.5', '2001:db8::5'],
  });
  assert.deepEqual(addressesOf(['unknown', 'fa:16:3e:00:00:02 10.0.1.5', 'router', 'dynamic']), {
    macs: ['fa:16:3e:00:00:02'],
    ips: ['10.0.1.5'],
  });
  assert.deepEqual(addressesOf(['fa:16:3e:00:00:03 172.24.4.10/24 garbage']), {
    macs: ['fa:16:3e:00:00:03'],
    ips: [],
  });
  assert.deepEqual(addressesOf([]), { macs: [], ips: [] });
});

test("scope 'chassis': bound here or an additional chassis here; scope 'all': bound anywhere", () => {
  const mine = new PortBindingIndex('chassis');
  const all = new PortBindingIndex('all');
  mine.setChassis(CH_ME);
  const rows = [
    pb({ ip: '10.0.0.1', device: 'here' }),
    pb({ ip: '10.0.0.2', device: 'elsewhere', chassis: [CH_OTHER] }),
    pb({ ip: '10.0.0.3', device: 'unbound', chassis: [] }),
    pb({ ip: '10.0.0.4', device: 'migrating-here', chassis: [CH_OTHER], extra: [CH_ME] }),
  ];
  const changes = [
    insert('Datapath_Binding', dp(DP, `neutron-${NET}`)),
    ...rows.map((r) => insert('Port_Binding', r)),
  ];
  mine.apply(changes);
  all.apply(changes);
  assert.deepEqual(
    ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'].map((ip) => found(mine, ip)),
    ['here', 'MDA_ERR_PORT_NOT_FOUND', 'MDA_ERR_PORT_NOT_FOUND', 'migrating-here'],
  );
  assert.equal(found(all, '10.0.0.2'), 'elsewhere');
  assert.equal(found(all, '10.0.0.3'), 'MDA_ERR_PORT_NOT_FOUND', 'unbound counts nowhere');
  // Without a chassis row, scope 'chassis' knows nothing.
  mine.setChassis(undefined);
  assert.equal(mine.size, 0);
  mine.setChassis(CH_ME);
  assert.equal(mine.size, 2);
});

test('ports before their datapath, a renamed datapath, MAC lookups, removal', () => {
  const index = new PortBindingIndex('all');
  const a = pb({ ip: '10.1.0.1', device: 'A' });
  index.apply([insert('Port_Binding', a)]);
  assert.equal(index.size, 0, 'no network yet');
  index.apply([insert('Datapath_Binding', dp(DP, `neutron-${NET}`))]);
  assert.equal(found(index, '10.1.0.1'), 'A');
  const mac = (a.mac as string[])[0]!.split(' ')[0]!;
  assert.equal(found(index, 'fe80::1', mac), 'A');
  // The datapath now names another network: the port moves with it.
  index.apply([
    { table: 'Datapath_Binding', uuid: DP, old: dp(DP, `neutron-${NET}`), new: dp(DP, 'neutron-other') },
  ]);
  assert.equal(found(index, '10.1.0.1'), 'MDA_ERR_PORT_NOT_FOUND');
  assert.equal(index.lookup({ mode: 'network', id: 'other', ip: '10.1.0.1' }).projectId, 'p');
  index.apply([{ table: 'Port_Binding', uuid: a._uuid, old: a, new: undefined }]);
  assert.equal(index.size, 0);
  assert.throws(() => index.lookup({ mode: 'network', id: 'other', ip: '10.1.0.1' }), MetadataError);
});

test('an update moves the keys: the old address no longer finds the port', () => {
  const index = new PortBindingIndex('all');
  const a = pb({ ip: '10.2.0.1', device: 'A' });
  index.apply([insert('Datapath_Binding', dp(DP, `neutron-${NET}`)), insert('Port_Binding', a)]);
  const moved = { ...a, mac: ['fa:16:3e:99:99:99 10.2.0.2'] } as Row;
  index.apply([{ table: 'Port_Binding', uuid: a._uuid, old: a, new: moved }]);
  assert.equal(found(index, '10.2.0.1'), 'MDA_ERR_PORT_NOT_FOUND');
  assert.equal(found(index, '10.2.0.2'), 'A');
  assert.equal(index.size, 1);
});
