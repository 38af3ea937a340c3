/* The password document (reference.md §7.2, §12.3 item 9): GET, POST once, 409, 400 rules, the 1020-byte limit. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { A, AS_A, AS_B, AS_C, B, C, PROJECT, request, startNova, TEXT_HTML } from './helpers.js';

const PATH = '/openstack/latest/password';

test('GET, POST, 409 on repeat, GET returns it, DELETE and HEAD are 400', async (t) => {
  const { port, nova } = await startNova(t);
  const empty = await request(port, PATH, { headers: AS_A });
  assert.equal(empty.status, 200);
  assert.equal(empty.headers['content-type'], TEXT_HTML);
  assert.equal(empty.headers['content-length'], '0');
  assert.equal(empty.body.length, 0);

  const post = await request(port, PATH, { method: 'POST', headers: AS_A, body: 'c2VjcmV0cGFzc3dvcmQ=' });
  assert.equal(post.status, 200);
  assert.equal(post.headers['content-type'], TEXT_HTML);
  assert.equal(post.body.length, 0);
  assert.equal(nova.password(A), 'c2VjcmV0cGFzc3dvcmQ=');

  const again = await request(port, PATH, { method: 'POST', headers: AS_A, body: 'b3RoZXI=' });
  assert.equal(again.status, 409);
  assert.equal(again.headers['content-type'], TEXT_HTML);
  assert.match(
    again.text,
    /<title>409 Conflict<\/title>[\s\S]*There was a conflict when trying to complete your request\./,
  );

  const got = await request(port, '/openstack/2013-04-04/password', { headers: AS_A });
  assert.equal(got.status, 200);
  assert.equal(got.text, 'c2VjcmV0cGFzc3dvcmQ=');
  assert.equal(got.body.length, 20);

  const del = await request(port, PATH, { method: 'DELETE', headers: AS_A });
  assert.equal(del.status, 400);
  assert.match(del.text, /GET and POST only are supported\./);
  const put = await request(port, PATH, { method: 'PUT', headers: AS_A, body: 'x' });
  assert.equal(put.status, 400);

  const head = await request(port, PATH, { method: 'HEAD', headers: AS_A });
  assert.equal(head.status, 400);
  assert.equal(head.body.length, 0);
  assert.equal(head.headers['content-length'], String(del.body.length));

  // Other instances are unaffected.
  assert.equal((await request(port, PATH, { headers: AS_B })).body.length, 0);
});

test('the 1020-byte limit: declared or actual length', async (t) => {
  const { port, nova } = await startNova(t);
  const tooLarge = await request(port, PATH, { method: 'POST', headers: AS_B, body: 'x'.repeat(1021) });
  assert.equal(tooLarge.status, 400);
  assert.match(tooLarge.text, /Request is too large\./);
  assert.equal(nova.password(B), undefined);

  // Chunked, no Content-Length: the body itself is measured.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: PATH, method: 'POST', headers: AS_B, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      },
    );
    req.on('error', reject);
    req.write('y'.repeat(600));
    req.end('y'.repeat(421));
  });
  assert.equal(chunked, 400);

  const exact = 'z'.repeat(1020);
  const ok = await request(port, PATH, { method: 'POST', headers: AS_B, body: exact });
  assert.equal(ok.status, 200);
  assert.equal((await request(port, PATH, { headers: AS_B })).text, exact);
});

test('an empty POST leaves the password unset; non-UTF-8 bodies fail like Nova (500)', async (t) => {
  const { port, nova } = await startNova(t);
  assert.equal((await request(port, PATH, { method: 'POST', headers: AS_C, body: '' })).status, 200);
  assert.equal(nova.password(C), undefined);
  const bad = await request(port, PATH, {
    method: 'POST',
    headers: AS_C,
    body: Buffer.from([0xff, 0xfe, 0x41]),
  });
  assert.equal(bad.status, 500);
  assert.equal(nova.password(C), undefined);
  const utf8 = 'pässwörd ✓';
  assert.equal((await request(port, PATH, { method: 'POST', headers: AS_C, body: utf8 })).status, 200);
  const got = await request(port, PATH, { headers: AS_C });
  assert.equal(got.text, utf8);
});

test('a password given in the instances file is served and blocks POST', async (t) => {
  const { port, nova } = await startNova(t);
  nova.setInstances([{ uuid: A, project_id: PROJECT, name: 'a', password: 'preset' }]);
  assert.equal((await request(port, PATH, { headers: AS_A })).text, 'preset');
  assert.equal((await request(port, PATH, { method: 'POST', headers: AS_A, body: 'x' })).status, 409);
});
