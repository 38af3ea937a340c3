/* What the agent reads from the proxy's request (DECISIONS.md, "Agent input"). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetadataError } from '@nmp/common';
import { readRequestIdentity } from '../src/request-identity.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof MetadataError ? e.code : String(e);
  }
  return undefined;
}

test('network mode and router mode', () => {
  const n = readRequestIdentity({ 'x-neutron-network-id': 'n1', 'x-forwarded-for': '10.0.0.5' });
  assert.deepEqual(n.query, { mode: 'network', id: 'n1', ip: '10.0.0.5' });
  const r = readRequestIdentity({ 'x-neutron-router-id': 'r1', 'x-forwarded-for': '::ffff:10.0.0.5' });
  assert.deepEqual(r.query, { mode: 'router', id: 'r1', ip: '10.0.0.5' });
  assert.equal(r.source.raw, '::ffff:10.0.0.5');
});

test('OVN mode: X-OVN-Network-ID is a network-mode lookup, also by MAC for link-local sources', () => {
  const o = readRequestIdentity({ 'x-ovn-network-id': 'n1', 'x-forwarded-for': '10.0.0.5' });
  assert.deepEqual(o.query, { mode: 'network', id: 'n1', ip: '10.0.0.5' });
  const v6 = readRequestIdentity({
    'x-ovn-network-id': 'n1',
    'x-forwarded-for': 'fe80::f816:3eff:febe:3d62',
  });
  assert.equal(v6.query.mac, 'fa:16:3e:be:3d:62');
});

test('OVN id with a Neutron id: 400 MDA_ERR_MIXED_IDS; a repeated OVN id: 400 MDA_ERR_BAD_ID', () => {
  for (const other of [{ 'x-neutron-network-id': 'n1' }, { 'x-neutron-router-id': 'r1' }]) {
    assert.equal(
      code(() => readRequestIdentity({ ...other, 'x-ovn-network-id': 'n1', 'x-forwarded-for': '10.0.0.5' })),
      'MDA_ERR_MIXED_IDS',
    );
  }
  // What neutron's OVN haproxy delivers when the instance sent its own copy (it only adds one).
  assert.equal(
    code(() => readRequestIdentity({ 'x-ovn-network-id': ['evil', 'n1'], 'x-forwarded-for': '10.0.0.5' })),
    'MDA_ERR_BAD_ID',
  );
});

test('both ids: 400 naming both; neither: 400', () => {
  try {
    readRequestIdentity({
      'x-neutron-network-id': 'n1',
      'x-neutron-router-id': 'r1',
      'x-forwarded-for': '10.0.0.5',
    });
    assert.fail('accepted both ids');
  } catch (e) {
    assert.ok(e instanceof MetadataError);
    assert.equal(e.status, 400);
    assert.equal(e.message, 'Both network n1 and router r1 defined.');
  }
  assert.equal(
    code(() => readRequestIdentity({ 'x-forwarded-for': '10.0.0.5' })),
    'MDA_ERR_NO_ID',
  );
});

test('the last X-Forwarded-For value wins', () => {
  const r = readRequestIdentity({ 'x-neutron-network-id': 'n1', 'x-forwarded-for': '6.6.6.6, 10.0.0.5' });
  assert.equal(r.query.ip, '10.0.0.5');
  assert.equal(r.source.raw, '10.0.0.5');
});

test('link-local IPv6 sources are looked up by MAC', () => {
  const r = readRequestIdentity({
    'x-neutron-network-id': 'n1',
    'x-forwarded-for': 'fe80::f816:3eff:febe:3d62',
  });
  assert.equal(r.query.mac, 'fa:16:3e:be:3d:62');
});

test('bad input is refused with a stable code', () => {
  assert.equal(
    code(() => readRequestIdentity({ 'x-neutron-network-id': 'n1' })),
    'MDA_ERR_BAD_FORWARDED_FOR',
  );
  assert.equal(
    code(() => readRequestIdentity({ 'x-neutron-network-id': 'n1', 'x-forwarded-for': 'nonsense' })),
    'MDA_ERR_BAD_FORWARDED_FOR',
  );
  assert.equal(
    code(() => readRequestIdentity({ 'x-neutron-network-id': 'a, b', 'x-forwarded-for': '10.0.0.5' })),
    'MDA_ERR_BAD_ID',
  );
  assert.equal(
    code(() => readRequestIdentity({ 'x-neutron-network-id': '../../x', 'x-forwarded-for': '10.0.0.5' })),
    'MDA_ERR_BAD_ID',
  );
});
