/*
 * The rules that decide a network's namespace, on rows shaped as the Southbound replica holds them:
 * which ports are this chassis' VIFs, which localport is the metadata port, the addresses (only the IPv4
 * subnets with a local VIF, IPv6 only when a VIF has it and the host has IPv6), the MTU, and the cases that
 * tear the namespace down.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Row } from '@nmp/ovsdb';
import { isLocalVif, linkLocalOf, pickMetadataPort, planNetwork, vethNames } from '../src/desired-state.js';

const ME = 'aaaaaaaa-0000-4000-8000-000000000001';
const OTHER = 'aaaaaaaa-0000-4000-8000-000000000002';
const NET = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
const DP: Row = {
  _uuid: 'bbbbbbbb-0000-4000-8000-000000000001',
  external_ids: new Map([['name', `neutron-${NET}`]]),
} as Row;

let n = 0;
function row(o: {
  type?: string;
  mac: string;
  chassis?: string[];
  extra?: string[];
  ext?: Record<string, string>;
  name?: string;
}): Row {
  n++;
  return {
    _uuid: `cccccccc-0000-4000-8000-${String(n).padStart(12, '0')}`,
    logical_port: o.name ?? `port-${n}`,
    type: o.type ?? '',
    datapath: DP._uuid,
    chassis: o.chassis ?? [],
    additional_chassis: o.extra ?? [],
    mac: [o.mac],
    external_ids: new Map(Object.entries(o.ext ?? {})),
  } as Row;
}

const meta = row({
  type: 'localport',
  name: 'meta',
  mac: 'fa:16:3e:aa:bb:cc 10.0.0.2 10.0.1.2 2001:db8::2',
  ext: {
    'neutron:device_owner': 'network:distributed',
    'neutron:cidrs': '10.0.0.2/24 10.0.1.2/24 2001:db8::2/64',
    'neutron:mtu': '1442',
  },
});

test("this chassis' VIFs: bound here or here as an additional chassis; type '' or external", () => {
  assert.equal(isLocalVif(row({ mac: 'fa:16:3e:00:00:01 10.0.0.5', chassis: [ME] }), ME), true);
  assert.equal(
    isLocalVif(row({ mac: 'fa:16:3e:00:00:01 10.0.0.5', chassis: [OTHER], extra: [ME] }), ME),
    true,
  );
  assert.equal(
    isLocalVif(row({ type: 'external', mac: 'fa:16:3e:00:00:01 10.0.0.5', chassis: [ME] }), ME),
    true,
  );
  assert.equal(isLocalVif(row({ mac: 'fa:16:3e:00:00:01 10.0.0.5', chassis: [OTHER] }), ME), false);
  assert.equal(isLocalVif(row({ type: 'localport', mac: 'fa:16:3e:00:00:01', chassis: [ME] }), ME), false);
  assert.equal(
    isLocalVif(row({ type: 'chassisredirect', mac: 'fa:16:3e:00:00:01', chassis: [ME] }), ME),
    false,
  );
  assert.equal(isLocalVif(row({ mac: 'fa:16:3e:00:00:01', chassis: [ME] }), undefined), false);
});

test('the metadata port: the localport owned by network:distributed, else any localport', () => {
  const plain = row({ type: 'localport', name: 'a-first', mac: 'fa:16:3e:00:00:09' });
  assert.equal(pickMetadataPort([plain, meta]), meta);
  assert.equal(pickMetadataPort([plain]), plain);
  assert.equal(pickMetadataPort([]), undefined);
});

test('addresses: 169.254.169.254, the IPv4 subnets with a local VIF, IPv6 only with an IPv6 VIF', () => {
  const v4only = row({ mac: 'fa:16:3e:00:00:05 10.0.0.5', chassis: [ME] });
  const plan = planNetwork(DP, [meta], [v4only], true);
  assert.equal(plan.kind, 'provision');
  if (plan.kind !== 'provision') return;
  assert.deepEqual(plan.spec.addresses, ['10.0.0.2/24', '169.254.169.254/32']);
  assert.equal(plan.spec.ipv6, false);
  assert.equal(plan.spec.mtu, 1442);
  assert.deepEqual(plan.spec.metadataPort, { logicalPort: 'meta', mac: 'fa:16:3e:aa:bb:cc' });
  assert.equal(plan.spec.network, NET);

  const dual = row({ mac: 'fa:16:3e:00:00:06 10.0.1.6 2001:db8::6', chassis: [ME] });
  const p2 = planNetwork(DP, [meta], [v4only, dual], true);
  assert.equal(p2.kind, 'provision');
  if (p2.kind !== 'provision') return;
  assert.deepEqual(p2.spec.addresses, [
    '10.0.0.2/24',
    '10.0.1.2/24',
    '169.254.169.254/32',
    'fe80::a9fe:a9fe/64',
    'fe80::f816:3eff:feaa:bbcc/64',
  ]);
  assert.equal(p2.spec.ipv6, true);
  const noV6Host = planNetwork(DP, [meta], [dual], false);
  assert.equal(
    noV6Host.kind === 'provision' && noV6Host.spec.ipv6,
    false,
    'no IPv6 on the host: none served',
  );
});

test('teardown cases: no local VIF, no metadata port, no MAC, no address, no network name', () => {
  const vif = row({ mac: 'fa:16:3e:00:00:05 10.0.0.5', chassis: [ME] });
  const kinds = [
    planNetwork(DP, [meta], [], true),
    planNetwork(DP, [], [vif], true),
    planNetwork(DP, [row({ type: 'localport', mac: 'unknown' })], [vif], true),
    planNetwork(DP, [meta], [row({ mac: 'fa:16:3e:00:00:07', chassis: [ME] })], true),
    planNetwork({ _uuid: DP._uuid, external_ids: new Map() } as Row, [meta], [vif], true),
  ];
  assert.deepEqual(
    kinds.map((k) => k.kind),
    ['teardown', 'teardown', 'teardown', 'teardown', 'teardown'],
  );
  assert.match(kinds[1]!.kind === 'teardown' ? kinds[1]!.reason : '', /no metadata port/);
});

test("neutron's device names and the EUI-64 link-local address", () => {
  assert.deepEqual(vethNames(NET), ['tap9d2c7a5e-30', 'tap9d2c7a5e-31']);
  assert.equal(linkLocalOf('fa:16:3e:00:00:05'), 'fe80::f816:3eff:fe00:5/64');
  assert.equal(linkLocalOf('02:00:00:00:00:00'), 'fe80::ff:fe00:0/64', 'canonical spelling');
});

test('a network name that cannot be a namespace or device name is never provisioned', () => {
  const vif = row({ mac: 'fa:16:3e:00:00:05 10.0.0.5', chassis: [ME] });
  for (const name of ['neutron-../../etc', 'neutron-a b', 'neutron-x;rm', `neutron-${'x'.repeat(130)}`]) {
    const dp = { _uuid: DP._uuid, external_ids: new Map([['name', name]]) } as Row;
    const plan = planNetwork(dp, [meta], [vif], true);
    assert.equal(plan.kind, 'teardown', name);
    assert.match(plan.kind === 'teardown' ? plan.reason : '', /unusable/);
  }
  const big = row({
    type: 'localport',
    name: 'meta-big',
    mac: 'fa:16:3e:aa:bb:dd 10.0.0.2',
    ext: {
      'neutron:device_owner': 'network:distributed',
      'neutron:cidrs': '10.0.0.2/24',
      'neutron:mtu': '999999',
    },
  });
  const plan = planNetwork(DP, [big], [vif], true);
  assert.equal(plan.kind === 'provision' && plan.spec.mtu, undefined, 'an impossible MTU is not applied');
});
