/* HTTP behaviour: HEAD mirrors GET's headers without a body, any method reads static documents, keep-alive. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { AS_A, AS_C, request, startNova } from './helpers.js';

test('HEAD: same status, type and Content-Length as GET, no body', async (t) => {
  const { port } = await startNova(t);
  const cases: Array<[string, Record<string, string>]> = [
    ['/', {}],
    ['/openstack/latest/meta_data.json', AS_A],
    ['/openstack/latest/user_data', AS_C],
    ['/latest/meta-data/', AS_A],
    ['/openstack/2099-01-01/meta_data.json', AS_A],
    ['/openstack/latest/meta_data.json', { ...AS_A, 'x-instance-id-signature': 'nope' }],
  ];
  for (const [path, headers] of cases) {
    const get = await request(port, path, { headers });
    const head = await request(port, path, { method: 'HEAD', headers });
    assert.equal(head.status, get.status, path);
    assert.equal(head.headers['content-type'], get.headers['content-type'], path);
    assert.equal(head.headers['content-length'], String(get.body.length), path);
    assert.ok(get.body.length > 0, path);
    assert.equal(head.body.length, 0, path);
  }
});

test('static documents ignore the method (Nova answers PUT with the document)', async (t) => {
  const { port } = await startNova(t);
  const get = await request(port, '/openstack/latest/meta_data.json', { headers: AS_A });
  for (const method of ['PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS']) {
    const r = await request(port, '/openstack/latest/meta_data.json', {
      method,
      headers: AS_A,
      body: 'ignored',
    });
    assert.equal(r.status, 200, method);
    assert.equal(r.text, get.text, method);
  }
});

test('keep-alive: many requests over one connection', async (t) => {
  const { port, nova } = await startNova(t);
  let connections = 0;
  nova.server.on('connection', () => connections++);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  for (let i = 0; i < 20; i++) {
    const path = i % 2 ? '/openstack/latest/meta_data.json' : '/latest/meta-data/instance-id';
    const r = await request(port, path, { headers: AS_A, agent });
    assert.equal(r.status, 200);
    assert.equal(r.headers.connection, 'keep-alive');
  }
  // Errors and a password POST keep the connection too.
  assert.equal((await request(port, '/nope', { agent })).status, 400);
  assert.equal(
    (await request(port, '/openstack/latest/password', { method: 'POST', headers: AS_A, body: 'p', agent }))
      .status,
    200,
  );
  assert.equal((await request(port, '/', { agent })).status, 200);
  assert.equal(connections, 1);
});
