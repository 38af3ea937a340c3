/*
 * The working chain end to end on loopback: instance -> proxy -> UNIX socket -> agent -> development Nova.
 * Each instance gets its own metadata; identity cannot be spoofed; bytes come back exactly; errors carry
 * their statuses and bodies; one request id travels through all three hops.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fetchFrom,
  INSTANCE_A,
  INSTANCE_B,
  INSTANCE_C,
  NETWORK,
  sampleInstance,
  startChain,
} from './chain-harness.js';

test('network mode: each loopback instance gets its own meta_data.json', async (t) => {
  const chain = await startChain(t);
  for (const [source, uuid] of [
    ['127.0.0.1', INSTANCE_A],
    ['127.0.0.2', INSTANCE_B],
    ['127.0.0.3', INSTANCE_C],
  ] as const) {
    const res = await fetchFrom(chain.networkPort, '/openstack/latest/meta_data.json', { source });
    assert.equal(res.status, 200, `${source}: ${res.body}`);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal((JSON.parse(res.body.toString()) as { uuid: string }).uuid, uuid);
  }
});

test('router mode and IPv6: the instance is found through the router, and over ::1', async (t) => {
  const chain = await startChain(t);
  const r = await fetchFrom(chain.routerPort, '/latest/meta-data/instance-id', { source: '127.0.0.2' });
  assert.equal(r.status, 200);
  const v6 = await fetchFrom(chain.networkPort, '/openstack/latest/meta_data.json', { host: '::1' });
  assert.equal((JSON.parse(v6.body.toString()) as { uuid: string }).uuid, INSTANCE_A);
  const seen = chain.novaSeen.map((s) => [s.headers['x-instance-id'], s.headers['x-forwarded-for']]);
  assert.deepEqual(seen, [
    [INSTANCE_B, '127.0.0.2'],
    [INSTANCE_A, '::1'],
  ]);
});

test('OVN mode: X-OVN-Network-ID reaches the agent as the network, spoofed copies do not', async (t) => {
  const chain = await startChain(t);
  const res = await fetchFrom(chain.ovnPort, '/openstack/latest/meta_data.json', {
    source: '127.0.0.3',
    headers: { 'X-OVN-Network-ID': 'other', 'X-Forwarded-For': '127.0.0.1' },
  });
  assert.equal(res.status, 200, res.body.toString());
  assert.equal((JSON.parse(res.body.toString()) as { uuid: string }).uuid, INSTANCE_C);
  const v6 = await fetchFrom(chain.ovnPort, '/openstack/latest/meta_data.json', { host: '::1' });
  assert.equal((JSON.parse(v6.body.toString()) as { uuid: string }).uuid, INSTANCE_A);
  const seen = chain.novaSeen.map((s) => [s.headers['x-instance-id'], s.headers['x-forwarded-for']]);
  assert.deepEqual(seen, [
    [INSTANCE_C, '127.0.0.3'],
    [INSTANCE_A, '::1'],
  ]);
  const line = chain.agentLogs.lines().find((l) => l.msg === 'request');
  assert.equal(line?.network, NETWORK);
});

test('spoofed identity headers change nothing', async (t) => {
  const chain = await startChain(t);
  const res = await fetchFrom(chain.networkPort, '/openstack/latest/meta_data.json', {
    source: '127.0.0.1',
    headers: {
      'X-Forwarded-For': '127.0.0.2',
      'x-instance-id': INSTANCE_B,
      'X-Neutron-Network-ID': 'other',
      'X-Neutron-Router-ID': 'r',
      'x-tenant-id': 'evil',
    },
  });
  assert.equal(res.status, 200);
  assert.equal((JSON.parse(res.body.toString()) as { uuid: string }).uuid, INSTANCE_A);
});

test('gzip and binary user data come back byte-exact; text user data too', async (t) => {
  const chain = await startChain(t);
  const b = await fetchFrom(chain.networkPort, '/openstack/latest/user_data', {
    source: '127.0.0.2',
    headers: { 'accept-encoding': 'gzip' },
  });
  assert.equal(b.status, 200);
  assert.deepEqual(b.body, Buffer.from(String(sampleInstance(INSTANCE_B).user_data_base64), 'base64'));
  assert.equal(b.body[0], 0x1f);
  assert.equal(b.headers['content-encoding'], undefined);
  const c = await fetchFrom(chain.networkPort, '/openstack/latest/user_data', { source: '127.0.0.3' });
  assert.deepEqual(c.body, Buffer.from(String(sampleInstance(INSTANCE_C).user_data_base64), 'base64'));
  const a = await fetchFrom(chain.networkPort, '/latest/user-data', { source: '127.0.0.1' });
  assert.equal(a.body.toString(), sampleInstance(INSTANCE_A).user_data);
});

test('HEAD carries the length of the GET and no body', async (t) => {
  const chain = await startChain(t);
  const get = await fetchFrom(chain.networkPort, '/openstack/latest/meta_data.json');
  const head = await fetchFrom(chain.networkPort, '/openstack/latest/meta_data.json', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(get.body.length));
  assert.equal(head.body.length, 0);
});

test('POST password, then GET it back; a second POST conflicts', async (t) => {
  const chain = await startChain(t);
  const path = '/openstack/2013-04-04/password';
  const before = await fetchFrom(chain.networkPort, path, { source: '127.0.0.3' });
  assert.equal(before.body.length, 0);
  const post = await fetchFrom(chain.networkPort, path, {
    source: '127.0.0.3',
    method: 'POST',
    body: 'c2VjcmV0cGFzc3dvcmQ=',
  });
  assert.equal(post.status, 200);
  const get = await fetchFrom(chain.networkPort, path, { source: '127.0.0.3' });
  assert.equal(get.body.toString(), 'c2VjcmV0cGFzc3dvcmQ=');
  const again = await fetchFrom(chain.networkPort, path, {
    source: '127.0.0.3',
    method: 'POST',
    body: 'other',
  });
  assert.equal(again.status, 409);
  const other = await fetchFrom(chain.networkPort, path, { source: '127.0.0.2' });
  assert.equal(other.body.length, 0, 'another instance does not see the password');
});

test('an address not in the inventory gets 404 naming the network', async (t) => {
  const chain = await startChain(t);
  const res = await fetchFrom(chain.networkPort, '/openstack/latest/meta_data.json', { source: '127.0.0.9' });
  assert.equal(res.status, 404);
  assert.equal(res.headers['content-type'], 'text/plain; charset=UTF-8');
  assert.equal(res.body.toString(), `Instance was not found on network ${NETWORK}.\n`);
  assert.equal(chain.novaSeen.length, 0);
});

test("Nova's own 404 for an unknown file is relayed", async (t) => {
  const chain = await startChain(t);
  const res = await fetchFrom(chain.networkPort, '/openstack/2099-01-01/nothing.json');
  assert.equal(res.status, 404);
  assert.match(String(res.headers['content-type']), /text\/html/);
});

test('one request id travels from proxy to agent to Nova', async (t) => {
  const chain = await startChain(t);
  await fetchFrom(chain.networkPort, '/latest/meta-data/hostname');
  const proxyLine = chain.proxyLogs.lines().find((l) => l.msg === 'request')!;
  const agentLine = chain.agentLogs.lines().find((l) => l.msg === 'request')!;
  assert.match(String(proxyLine.rid), /^req-[0-9a-f-]{36}$/);
  assert.equal(agentLine.rid, proxyLine.rid);
  assert.equal(chain.novaSeen[0]!.headers['x-openstack-request-id'], proxyLine.rid);
  assert.equal(proxyLine.network, NETWORK);
  assert.equal(agentLine.instance, INSTANCE_A);
  for (const line of [proxyLine, agentLine]) {
    for (const k of ['method', 'path', 'status', 'ms'])
      assert.ok(k in line, `${k} missing in ${JSON.stringify(line)}`);
  }
});

test('a wrong shared secret: Nova says 403, the agent warns without printing any secret', async (t) => {
  const chain = await startChain(t, { novaSecret: 'nova-side-secret', agentSecret: 'agent-side-secret' });
  const res = await fetchFrom(chain.networkPort, '/openstack/latest/meta_data.json');
  assert.equal(res.status, 403);
  assert.match(res.body.toString(), /Invalid proxy request signature/);
  const line = chain.agentLogs.lines().find((l) => l.code === 'MDA_ERR_NOVA_FORBIDDEN');
  assert.ok(line, 'agent logged the 403 with its code');
  assert.match(String(line.hint), /shared secrets/);
  for (const text of [chain.agentLogs.text(), chain.proxyLogs.text()]) {
    assert.ok(!text.includes('agent-side-secret') && !text.includes('nova-side-secret'), 'secret in logs');
  }
});
