/* Address normalisation on both sides of the socket (reference.md §12.2). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  canonicalIp,
  forwardedForFromPeer,
  macFromEui64,
  normaliseMac,
  parseForwardedFor,
} from '../src/address.js';

test('proxy: peer address to X-Forwarded-For', () => {
  assert.equal(forwardedForFromPeer('10.0.0.5'), '10.0.0.5');
  assert.equal(forwardedForFromPeer('::ffff:10.0.0.5'), '10.0.0.5');
  assert.equal(forwardedForFromPeer('::FFFF:10.0.0.5'), '10.0.0.5');
  assert.equal(forwardedForFromPeer('fe80::f816:3eff:febe:3d62%veth0'), 'fe80::f816:3eff:febe:3d62');
  assert.equal(forwardedForFromPeer('2001:db8::5'), '2001:db8::5');
  assert.equal(forwardedForFromPeer('::ffff:a00:5'), '::ffff:a00:5');
  assert.equal(forwardedForFromPeer(undefined), undefined);
});

test('agent: reference §12.2 table', () => {
  assert.deepEqual(parseForwardedFor('10.0.0.5'), { ip: '10.0.0.5', raw: '10.0.0.5' });
  assert.deepEqual(parseForwardedFor('::ffff:10.0.0.5'), { ip: '10.0.0.5', raw: '::ffff:10.0.0.5' });
  assert.deepEqual(parseForwardedFor('2001:db8::5'), { ip: '2001:db8::5', raw: '2001:db8::5' });
  assert.deepEqual(parseForwardedFor('fe80::f816:3eff:febe:3d62'), {
    ip: 'fe80::f816:3eff:febe:3d62',
    mac: 'fa:16:3e:be:3d:62',
    raw: 'fe80::f816:3eff:febe:3d62',
  });
  assert.equal(parseForwardedFor('fe80::1')?.mac, '02:00:00:00:00:01');
  assert.equal(parseForwardedFor(undefined), undefined);
});

test('agent: the last X-Forwarded-For value wins', () => {
  assert.equal(parseForwardedFor('6.6.6.6, 10.0.0.5')?.ip, '10.0.0.5');
  assert.equal(parseForwardedFor(['6.6.6.6', '10.0.0.7'])?.ip, '10.0.0.7');
});

test('agent: garbage is refused', () => {
  for (const bad of [
    '',
    ' ',
    'abc',
    '10.0.0',
    '010.0.0.5',
    '1.2.3.4.5',
    '10.0.0.5, ',
    '::g',
    'x'.repeat(100),
  ]) {
    assert.equal(parseForwardedFor(bad), undefined, bad);
  }
});

test('EUI-64 and MAC helpers', () => {
  assert.equal(macFromEui64('fe80::f816:3eff:febe:3d62'), 'fa:16:3e:be:3d:62');
  assert.equal(normaliseMac('FA-16-3E-BE-3D-62'), 'fa:16:3e:be:3d:62');
  assert.equal(normaliseMac('fa:16:3e:be:3d'), undefined);
  assert.equal(canonicalIp('2001:DB8:0::05'), '2001:db8::5');
  assert.equal(canonicalIp('::ffff:10.0.0.5'), '10.0.0.5');
  assert.equal(canonicalIp('nope'), undefined);
});
