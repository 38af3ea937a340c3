/*
 * Path rules of the SSRF defences: prefixes on segment boundaries, globs within and across segments, and
 * canonical paths that cannot be spelled around a rule (repeated slashes, percent-encoding, dot segments).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalPath, PathRuleError, PathRules } from '../src/ssrf/paths.js';

test('prefixes match on segment boundaries; a trailing slash changes nothing; / matches all', () => {
  const r = new PathRules(['/openstack', '/latest/meta-data/']);
  for (const p of ['/openstack', '/openstack/', '/openstack/latest/meta_data.json', '/latest/meta-data'])
    assert.ok(r.matches(p), p);
  for (const p of ['/openstackx', '/', '/latest', '/latest/meta-datax', '/ec2/openstack'])
    assert.ok(!r.matches(p), p);
  assert.ok(new PathRules(['/']).matches('/anything/at/all'));
  assert.ok(new PathRules(['/']).matches('/'));
});

test('globs: * within a segment, ** across, ? one character; the whole path must match', () => {
  const r = new PathRules(['/openstack/*/user_data', '/**/password', '/20??-??-??/user-data']);
  assert.ok(r.matches('/openstack/latest/user_data'));
  assert.ok(r.matches('/openstack/2018-08-27/user_data'));
  assert.ok(!r.matches('/openstack/a/b/user_data'));
  assert.ok(!r.matches('/openstack/latest/user_data/x'));
  assert.ok(r.matches('/openstack/latest/password'));
  assert.ok(r.matches('/x/password'));
  assert.ok(!r.matches('/password'));
  assert.ok(r.matches('/2009-04-04/user-data'));
  assert.ok(!r.matches('/latest/user-data'));
  // Regex characters in rules are literal.
  const dots = new PathRules(['/openstack/*/meta_data.json']);
  assert.ok(dots.matches('/openstack/latest/meta_data.json'));
  assert.ok(!dots.matches('/openstack/latest/meta_dataxjson'));
});

test('empty lists match nothing; blank entries are ignored', () => {
  const r = new PathRules(['', '  ']);
  assert.equal(r.empty, true);
  assert.ok(!r.matches('/'));
});

test('canonicalPath: query and fragment dropped, slashes collapsed, percent-decoded', () => {
  assert.equal(canonicalPath('/openstack?x=/../'), '/openstack');
  assert.equal(canonicalPath('/a//b///c'), '/a/b/c');
  assert.equal(canonicalPath('/openstack/latest/%75ser_data'), '/openstack/latest/user_data');
  assert.equal(canonicalPath('/a/.hidden/b..c'), '/a/.hidden/b..c');
});

test('canonicalPath refuses what could be read two ways', () => {
  for (const p of [
    '/a/../b',
    '/a/./b',
    '/a/..',
    '/a/.',
    '/a/%2e%2e/b',
    '/a/%2E/b',
    '/a%2fb',
    '/a%5Cb',
    '/a\\b',
    '/a%00b',
    '/a%zzb',
    '/a%e0%80b',
  ]) {
    assert.equal(canonicalPath(p), undefined, p);
  }
});

test('invalid rules are refused', () => {
  for (const bad of ['openstack', '*/x', '/a/../b', '/a%2fb', '/a#b', '/a%zz']) {
    assert.throws(() => new PathRules([bad]), PathRuleError, bad);
  }
});
