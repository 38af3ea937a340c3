/* Path handling against Python's posixpath.normpath (vectors produced with CPython) and Nova's routing. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { documentKey, normalisedPath, normpath, pathInfo } from '../src/paths.js';

const NORMPATH: Array<[string, string]> = [
  ['/', '/'],
  ['//', '//'],
  ['///', '/'],
  ['/a/', '/a'],
  ['/a//b', '/a/b'],
  ['/a/./b/', '/a/b'],
  ['/a/../b', '/b'],
  ['/..', '/'],
  ['/../..//x', '/x'],
  ['//openstack/latest', '//openstack/latest'],
  ['///openstack/latest', '/openstack/latest'],
  ['/openstack/latest/.', '/openstack/latest'],
  ['/a/b/../../..', '/'],
  ['/./', '/'],
  ['/latest/meta-data/public-keys/0/../0/openssh-key', '/latest/meta-data/public-keys/0/openssh-key'],
  ['/.foo/..bar/...', '/.foo/..bar/...'],
  ['', '.'],
];

test('normpath matches posixpath.normpath', () => {
  for (const [input, expected] of NORMPATH) assert.equal(normpath(input), expected, `normpath(${input})`);
});

test('normalisedPath drops the query, decodes percent-escapes and normalises', () => {
  assert.equal(normalisedPath('/openstack/latest/?foo=bar&x=1'), '/openstack/latest');
  assert.equal(normalisedPath('/openstack/latest/meta%5Fdata.json'), '/openstack/latest/meta_data.json');
  assert.equal(normalisedPath('/latest//meta-data/./'), '/latest/meta-data');
  assert.equal(normalisedPath('/bad%zzescape'), '/bad%zzescape');
  assert.equal(pathInfo('http://169.254.169.254/latest/meta-data?x'), '/latest/meta-data');
});

test('documentKey routes like Nova: non-openstack first segments are EC2', () => {
  assert.equal(documentKey('/openstack/latest/meta_data.json'), 'openstack/latest/meta_data.json');
  assert.equal(documentKey('/ec2/latest/meta-data'), 'ec2/latest/meta-data');
  assert.equal(documentKey('/latest/meta-data'), 'ec2/latest/meta-data');
  assert.equal(documentKey('/openstack'), 'openstack');
  assert.equal(documentKey('/ec2'), 'ec2');
  assert.equal(documentKey('/openstackx/latest'), 'ec2/openstackx/latest');
  // Two leading slashes survive normpath; Nova then sees an empty first token and answers the EC2 list.
  assert.equal(documentKey('//openstack/latest'), 'ec2');
});
