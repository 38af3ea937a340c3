/* The OpenStack tree over real sockets: listings, documents, version gating and content types (§7.2, §12.3). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  A,
  AS_A,
  AS_B,
  AS_C,
  JSON_TYPE,
  NOT_FOUND_HTML,
  PROJECT,
  request,
  SAMPLE,
  startNova,
  TEXT_PLAIN,
} from './helpers.js';

const EC2_LIST =
  '1.0\n2007-01-19\n2007-03-01\n2007-08-29\n2007-10-10\n2007-12-15\n2008-02-01\n2008-09-01\n2009-04-04\nlatest';
const OS_LIST =
  '2012-08-10\n2013-04-04\n2013-10-17\n2015-10-15\n2016-06-30\n2016-10-06\n2017-02-22\n2018-08-27\n2020-10-14\n2025-04-04\nlatest';

test('/ is the EC2 version list, 98 bytes, served without identity headers', async (t) => {
  const { port } = await startNova(t);
  for (const path of ['/', '/./', '/..', '///']) {
    const r = await request(port, path);
    assert.equal(r.status, 200, path);
    assert.equal(r.headers['content-type'], TEXT_PLAIN);
    assert.equal(r.text, EC2_LIST);
    assert.equal(r.headers['content-length'], '98');
  }
});

test('/openstack lists every version not dated in the future, then latest', async (t) => {
  const { port } = await startNova(t);
  const r = await request(port, '/openstack', { headers: AS_A });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], TEXT_PLAIN);
  assert.equal(r.text, OS_LIST);
  assert.equal((await request(port, '/openstack/', { headers: AS_A })).text, OS_LIST);
  // Without identity even the list needs the headers.
  assert.equal((await request(port, '/openstack')).status, 400);
});

test('future versions are hidden from the listing but still served', async (t) => {
  const { port } = await startNova(t, { now: () => new Date('2024-06-01T12:00:00Z') });
  const list = await request(port, '/openstack', { headers: AS_A });
  assert.ok(!list.text.includes('2025-04-04'));
  assert.ok(list.text.endsWith('2020-10-14\nlatest'));
  const md = await request(port, '/openstack/2025-04-04/meta_data.json', { headers: AS_A });
  assert.equal(md.status, 200);
  assert.equal(JSON.parse(md.text).uuid, A);
});

test('/openstack/<v> lists the files of that version (user_data only when present)', async (t) => {
  const { nova, port } = await startNova(t);
  const latest = await request(port, '/openstack/latest', { headers: AS_A });
  assert.equal(latest.headers['content-type'], TEXT_PLAIN);
  assert.equal(
    latest.text,
    'meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json',
  );
  assert.equal(latest.body.length, 86);
  const expected: Record<string, string> = {
    '2012-08-10': 'meta_data.json\nuser_data',
    '2013-04-04': 'meta_data.json\nuser_data\npassword',
    '2013-10-17': 'meta_data.json\nuser_data\npassword\nvendor_data.json',
    '2015-10-15': 'meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json',
    '2016-06-30': 'meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json',
    '2016-10-06':
      'meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json',
  };
  for (const [v, text] of Object.entries(expected)) {
    assert.equal((await request(port, `/openstack/${v}/`, { headers: AS_A })).text, text, v);
  }
  // Nova also routes the name "version" to the listing.
  assert.equal(
    (await request(port, '/openstack/2012-08-10/version', { headers: AS_A })).text,
    expected['2012-08-10'],
  );

  nova.setInstances([{ uuid: A, project_id: PROJECT, name: 'no-user-data' }]);
  const bare = await request(port, '/openstack/latest', { headers: AS_A });
  assert.equal(bare.text, 'meta_data.json\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json');
  const ud = await request(port, '/openstack/latest/user_data', { headers: AS_A });
  assert.equal(ud.status, 404);
  assert.equal(ud.text, NOT_FOUND_HTML);
});

test('meta_data.json: Nova key order, Python JSON separators, fields gated by version', async (t) => {
  const { port } = await startNova(t);
  const base = [
    'uuid',
    'meta',
    'public_keys',
    'keys',
    'hostname',
    'name',
    'launch_index',
    'availability_zone',
  ];
  const expectedKeys: Record<string, string[]> = {
    '2012-08-10': base,
    '2013-04-04': [...base, 'random_seed'],
    '2015-10-15': [...base, 'random_seed', 'project_id'],
    '2016-06-30': [...base, 'random_seed', 'project_id', 'devices'],
    '2020-10-14': [...base, 'random_seed', 'project_id', 'devices', 'dedicated_cpus'],
    latest: [...base, 'random_seed', 'project_id', 'devices', 'dedicated_cpus'],
  };
  let seed: string | undefined;
  for (const [v, keys] of Object.entries(expectedKeys)) {
    const r = await request(port, `/openstack/${v}/meta_data.json`, { headers: AS_A });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], JSON_TYPE);
    assert.ok(r.text.startsWith(`{"uuid": "${A}", "meta": {"role": "web"`), r.text.slice(0, 80));
    const md = JSON.parse(r.text);
    assert.deepEqual(Object.keys(md), keys, v);
    if (md.random_seed) {
      assert.equal(Buffer.from(md.random_seed, 'base64').length, 512);
      seed ??= md.random_seed;
      assert.equal(md.random_seed, seed, 'random_seed is stable for the process');
    }
  }
  const md = JSON.parse((await request(port, '/openstack/latest/meta_data.json', { headers: AS_A })).text);
  const key = SAMPLE[0]!.public_keys!.mykey;
  assert.equal(md.hostname, 'nmp-dev-a.novalocal');
  assert.equal(md.name, 'nmp-dev-a');
  assert.equal(md.project_id, PROJECT);
  assert.deepEqual(md.public_keys, { mykey: key });
  assert.deepEqual(md.keys, [{ name: 'mykey', type: 'ssh', data: key }]);
  assert.deepEqual(md.meta, { role: 'web', owner: 'nmp' });
  assert.deepEqual(md.devices, []);
  assert.deepEqual(md.dedicated_cpus, []);
});

test('meta_data.json for an instance without keys or meta, hostname from the name', async (t) => {
  const { port } = await startNova(t);
  const md = JSON.parse((await request(port, '/openstack/latest/meta_data.json', { headers: AS_C })).text);
  assert.equal(md.hostname, 'nmp-dev-c-binary.novalocal');
  assert.equal(md.availability_zone, 'az-2');
  assert.equal(md.launch_index, 2);
  for (const absent of ['meta', 'public_keys', 'keys', 'files']) assert.ok(!(absent in md), absent);
});

test('a hostname that already has a dot gets no domain; dhcpDomain is configurable', async (t) => {
  const { port, nova } = await startNova(t, { dhcpDomain: 'example.test' });
  nova.setInstances([{ uuid: A, project_id: PROJECT, name: 'x', hostname: 'web1.corp.example' }, SAMPLE[1]!]);
  const a = JSON.parse((await request(port, '/openstack/latest/meta_data.json', { headers: AS_A })).text);
  assert.equal(a.hostname, 'web1.corp.example');
  const b = JSON.parse((await request(port, '/openstack/latest/meta_data.json', { headers: AS_B })).text);
  assert.equal(b.hostname, 'nmp-dev-b.example.test');
});

test('user_data is served byte for byte: text, gzip, all 256 byte values', async (t) => {
  const { port } = await startNova(t);
  const a = await request(port, '/openstack/latest/user_data', { headers: AS_A });
  assert.equal(a.headers['content-type'], TEXT_PLAIN);
  assert.equal(a.text, SAMPLE[0]!.user_data);

  const b = await request(port, '/openstack/2018-08-27/user_data', { headers: AS_B });
  assert.equal(b.status, 200);
  assert.equal(b.headers['content-type'], TEXT_PLAIN);
  assert.ok(b.body.equals(Buffer.from(SAMPLE[1]!.user_data_base64!, 'base64')));
  assert.deepEqual([...b.body.subarray(0, 3)], [0x1f, 0x8b, 0x08]);
  assert.match(gunzipSync(b.body).toString(), /^#cloud-config\n/);
  assert.equal(b.headers['content-encoding'], undefined);

  const c = await request(port, '/openstack/2012-08-10/user_data', { headers: AS_C });
  assert.equal(c.body.length, 256);
  for (let i = 0; i < 256; i++) assert.equal(c.body[i], i);
  assert.equal(c.headers['content-length'], '256');
});

test('network_data.json is JSON labelled text/plain, served for every version', async (t) => {
  const { port } = await startNova(t);
  const r = await request(port, '/openstack/latest/network_data.json', { headers: AS_A });
  assert.equal(r.headers['content-type'], TEXT_PLAIN);
  assert.deepEqual(JSON.parse(r.text), SAMPLE[0]!.network_data);
  assert.equal(
    (await request(port, '/openstack/2012-08-10/network_data.json', { headers: AS_A })).status,
    200,
  );
  const c = await request(port, '/openstack/latest/network_data.json', { headers: AS_C });
  assert.equal(c.text, '{}');
});

test('vendor_data.json and vendor_data2.json', async (t) => {
  const { port } = await startNova(t);
  const v1 = await request(port, '/openstack/latest/vendor_data.json', { headers: AS_A });
  assert.equal(v1.headers['content-type'], JSON_TYPE);
  assert.deepEqual(JSON.parse(v1.text), SAMPLE[0]!.vendor_data);
  const v2 = await request(port, '/openstack/latest/vendor_data2.json', { headers: AS_A });
  assert.equal(v2.headers['content-type'], JSON_TYPE);
  assert.deepEqual(JSON.parse(v2.text), { static: SAMPLE[0]!.vendor_data, ...SAMPLE[0]!.vendor_data2 });
  assert.equal((await request(port, '/openstack/latest/vendor_data.json', { headers: AS_C })).text, '{}');
  assert.equal(
    (await request(port, '/openstack/latest/vendor_data2.json', { headers: AS_C })).text,
    '{"static": {}}',
  );
  // Gated by version: vendor_data.json since 2013-10-17, vendor_data2.json since 2016-10-06.
  assert.equal(
    (await request(port, '/openstack/2013-04-04/vendor_data.json', { headers: AS_A })).status,
    404,
  );
  assert.equal(
    (await request(port, '/openstack/2016-06-30/vendor_data2.json', { headers: AS_A })).status,
    404,
  );
  assert.equal(
    (await request(port, '/openstack/2016-10-06/vendor_data2.json', { headers: AS_A })).status,
    200,
  );
});

test('unknown versions and files are 404 with the generic page', async (t) => {
  const { port } = await startNova(t);
  for (const path of [
    '/openstack/2099-01-01/meta_data.json',
    '/openstack/2099-01-01',
    '/openstack/latest/nope.json',
    '/openstack/latest/meta_data.json/x',
    '/openstack/content/0000',
    '/openstack/content',
    '/openstack/2012-08-10/password',
  ]) {
    const r = await request(port, path, { headers: AS_A });
    assert.equal(r.status, 404, path);
    assert.equal(r.headers['content-type'], 'text/html; charset=UTF-8');
    assert.equal(r.text, NOT_FOUND_HTML, path);
    assert.equal(r.body.length, 154);
  }
});

test('paths are normalised like posixpath.normpath; queries and percent-escapes do not matter', async (t) => {
  const { port } = await startNova(t);
  const want = (await request(port, '/openstack/latest/meta_data.json', { headers: AS_A })).text;
  for (const path of [
    '/openstack/latest/meta_data.json/',
    '///openstack///latest//meta_data.json',
    '/openstack/./latest/../latest/meta_data.json',
    '/openstack/latest/meta_data.json?foo=bar&x=1',
    '/openstack/latest/meta%5Fdata.json',
    '/ec2/../openstack/latest/meta_data.json',
  ]) {
    const r = await request(port, path, { headers: AS_A });
    assert.equal(r.status, 200, path);
    assert.equal(r.text, want, path);
  }
  // Exactly two leading slashes survive normpath, and Nova then answers the EC2 version list.
  const quirk = await request(port, '//openstack/latest/meta_data.json', { headers: AS_A });
  assert.equal(quirk.status, 200);
  assert.ok(quirk.text.startsWith('1.0\n2007-01-19'));
});
