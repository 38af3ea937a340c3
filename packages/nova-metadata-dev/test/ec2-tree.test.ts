/* The EC2 tree (reference.md §7.2): listings, leaves, public-keys quirk, versions, /ec2 prefix. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  A,
  AS_A,
  AS_B,
  AS_C,
  identity,
  NOT_FOUND_HTML,
  PROJECT,
  request,
  SAMPLE,
  startNova,
  TEXT_PLAIN,
} from './helpers.js';

const LATEST_LISTING = [
  'ami-id',
  'ami-launch-index',
  'ami-manifest-path',
  'block-device-mapping/',
  'hostname',
  'instance-action',
  'instance-id',
  'instance-type',
  'local-hostname',
  'local-ipv4',
  'placement/',
  'public-hostname',
  'public-ipv4',
  'public-keys/',
  'reservation-id',
  'security-groups',
].join('\n');

test('meta-data/ listing: sorted keys, dicts with a trailing slash', async (t) => {
  const { port } = await startNova(t);
  for (const path of [
    '/latest/meta-data/',
    '/latest/meta-data',
    '/ec2/latest/meta-data/',
    '/2009-04-04/meta-data',
  ]) {
    const r = await request(port, path, { headers: AS_A });
    assert.equal(r.status, 200, path);
    assert.equal(r.headers['content-type'], TEXT_PLAIN);
    assert.equal(r.text, LATEST_LISTING, path);
  }
  const v1 = await request(port, '/1.0/meta-data/', { headers: AS_A });
  assert.equal(
    v1.text,
    'ami-id\nami-launch-index\nami-manifest-path\nhostname\ninstance-id\nlocal-ipv4\npublic-keys/\nreservation-id\nsecurity-groups',
  );
  const v2007 = await request(port, '/2007-08-29/meta-data/', { headers: AS_A });
  assert.ok(v2007.text.includes('instance-type') && !v2007.text.includes('placement/'));
});

test('leaves', async (t) => {
  const { port } = await startNova(t);
  const leaves: Record<string, string> = {
    'instance-id': 'i-00000001',
    hostname: 'nmp-dev-a.novalocal',
    'local-hostname': 'nmp-dev-a.novalocal',
    'public-hostname': 'nmp-dev-a.novalocal',
    'local-ipv4': '127.0.0.1',
    'public-ipv4': '',
    'placement/availability-zone': 'nova',
    placement: 'availability-zone',
    'ami-launch-index': '0',
    'ami-id': 'ami-00000001',
    'ami-manifest-path': 'FIXME',
    'instance-type': 'm1.small',
    'instance-action': 'none',
    'reservation-id': 'r-6f4c1a52',
    'security-groups': 'default',
    'block-device-mapping': 'ami\nroot',
    'block-device-mapping/root': '/dev/vda',
  };
  for (const [leaf, value] of Object.entries(leaves)) {
    const r = await request(port, `/latest/meta-data/${leaf}`, { headers: AS_A });
    assert.equal(r.status, 200, leaf);
    assert.equal(r.headers['content-type'], TEXT_PLAIN, leaf);
    assert.equal(r.text, value, leaf);
  }
  assert.equal(
    (await request(port, '/latest/meta-data/security-groups', { headers: AS_B })).text,
    'default\nweb',
  );
  assert.equal((await request(port, '/latest/meta-data/instance-id', { headers: AS_B })).text, 'i-00000002');
  assert.equal((await request(port, '/latest/meta-data/ami-launch-index', { headers: AS_C })).text, '2');
});

test('public-keys: 0=<name>, then openssh-key', async (t) => {
  const { port } = await startNova(t);
  const key = SAMPLE[0]!.public_keys!.mykey!;
  assert.equal((await request(port, '/latest/meta-data/public-keys/', { headers: AS_A })).text, '0=mykey');
  assert.equal(
    (await request(port, '/latest/meta-data/public-keys/0/', { headers: AS_A })).text,
    'openssh-key',
  );
  assert.equal(
    (await request(port, '/latest/meta-data/public-keys/0/openssh-key', { headers: AS_A })).text,
    key,
  );
  // Instances without keys have no public-keys node.
  assert.equal((await request(port, '/latest/meta-data/public-keys/', { headers: AS_B })).status, 404);
  assert.ok(!(await request(port, '/latest/meta-data/', { headers: AS_B })).text.includes('public-keys'));
});

test('/latest lists user-data only when present; user-data is raw bytes', async (t) => {
  const { port, nova } = await startNova(t);
  assert.equal((await request(port, '/latest', { headers: AS_A })).text, 'meta-data/\nuser-data');
  const c = await request(port, '/latest/user-data', { headers: AS_C });
  assert.equal(c.headers['content-type'], TEXT_PLAIN);
  assert.equal(c.body.length, 256);
  assert.ok(c.body.equals(Buffer.from(SAMPLE[2]!.user_data_base64!, 'base64')));
  const b = await request(port, '/2009-04-04/user-data', { headers: AS_B });
  assert.ok(b.body.equals(Buffer.from(SAMPLE[1]!.user_data_base64!, 'base64')));

  nova.setInstances([{ uuid: A, project_id: PROJECT, name: 'bare' }]);
  assert.equal((await request(port, '/latest', { headers: AS_A })).text, 'meta-data/');
  assert.equal((await request(port, '/latest/user-data', { headers: AS_A })).status, 404);
});

test('/ec2 and unknown EC2 versions', async (t) => {
  const { port } = await startNova(t);
  const list = await request(port, '/ec2', { headers: AS_A });
  assert.equal(list.status, 200);
  assert.ok(list.text.endsWith('2009-04-04\nlatest'));
  for (const path of [
    '/2010-01-01/meta-data/',
    '/ec2/openstack',
    '/latest/meta-data/nope',
    '/latest/meta-data/hostname/x',
  ]) {
    const r = await request(port, path, { headers: AS_A });
    assert.equal(r.status, 404, path);
    assert.equal(r.text, NOT_FOUND_HTML);
  }
});

test('local-ipv4 without an IPv4 fixed IP is the X-Forwarded-For value, or None', async (t) => {
  const { port, nova } = await startNova(t);
  nova.setInstances([{ uuid: A, project_id: PROJECT, name: 'v6only', fixed_ips: ['2001:db8::a'] }]);
  const withXff = await request(port, '/latest/meta-data/local-ipv4', {
    headers: { ...identity(A, PROJECT), 'x-forwarded-for': '192.0.2.7' },
  });
  assert.equal(withXff.text, '192.0.2.7');
  const headers = identity(A, PROJECT) as Record<string, string>;
  delete headers['x-forwarded-for'];
  assert.equal((await request(port, '/latest/meta-data/local-ipv4', { headers })).text, 'None');
});
