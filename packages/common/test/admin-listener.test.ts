/*
 * The shared edge of every admin listener: claiming a UNIX socket path (a stale socket replaced, a live
 * one or a file never touched), and the routes (/metrics, /healthz, /readyz; GET and HEAD only).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { tempDir as testkitTempDir, unixHttpGet } from '@nmp/testkit';
import { AdminListener } from '../src/admin-listener.js';
import { claimSocketPath, probeSocket } from '../src/unix-socket.js';

const tempDir = (t: TestContext) => testkitTempDir(t, 'nmp-admin-listener-');

const get = unixHttpGet;

test('claimSocketPath: directory made, stale socket removed, a live socket or a file refused', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'a', 'b', 'x.sock');
  await claimSocketPath(path, { what: 'test_socket', dirMode: 0o700 });
  assert.equal(statSync(join(dir, 'a', 'b')).mode & 0o777, 0o700);
  // A stale socket, as a crash leaves one.
  spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  assert.ok(lstatSync(path).isSocket());
  assert.equal(await probeSocket(path), false);
  await claimSocketPath(path, { what: 'test_socket' });
  assert.throws(() => lstatSync(path), { code: 'ENOENT' });

  const file = join(dir, 'file');
  writeFileSync(file, 'keep me');
  await assert.rejects(claimSocketPath(file, { what: 'test_socket' }), {
    message: `test_socket ${file} exists and is not a socket; refusing to remove it`,
  });
  assert.equal(readFileSync(file, 'utf8'), 'keep me');

  const live = new AdminListener({
    metrics: { contentType: 'text/plain', render: async () => '' },
    ready: () => ({ ready: true, text: 'ready\n' }),
  });
  await live.listenUnix(join(dir, 'live.sock'), 'test_socket');
  t.after(() => live.close());
  assert.equal(await probeSocket(join(dir, 'live.sock')), true);
  await assert.rejects(
    claimSocketPath(join(dir, 'live.sock'), { what: 'test_socket', busyHint: ' (hint)' }),
    {
      message: `test_socket ${join(dir, 'live.sock')}: another process is listening there (hint)`,
    },
  );
});

test('AdminListener: the routes, owner-only socket, 500 when metrics fail, socket gone after close', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'admin.sock');
  let ready = true;
  let fail = false;
  const errors: string[] = [];
  const admin = new AdminListener({
    metrics: {
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      render: async () => {
        if (fail) throw new Error('boom');
        return 'x_total 1\n';
      },
    },
    ready: () => (ready ? { ready: true, text: 'ready\n' } : { ready: false, text: 'not ready: busy\n' }),
    onError: (_err, p) => errors.push(p),
  });
  await admin.listenUnix(path, 'admin_socket');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(admin.addresses, [path]);

  assert.deepEqual(await get(path, '/metrics'), {
    status: 200,
    type: 'text/plain; version=0.0.4; charset=utf-8',
    body: 'x_total 1\n',
  });
  assert.equal((await get(path, '/healthz')).body, 'ok\n');
  assert.equal((await get(path, '/readyz?verbose')).status, 200);
  ready = false;
  assert.deepEqual(await get(path, '/readyz'), {
    status: 503,
    type: 'text/plain; charset=utf-8',
    body: 'not ready: busy\n',
  });
  assert.equal((await get(path, '/metrics', 'HEAD')).body, '');
  assert.deepEqual(await get(path, '/metrics', 'POST'), {
    status: 405,
    type: 'text/plain; charset=utf-8',
    body: 'only GET and HEAD\n',
    allow: 'GET, HEAD',
  });
  assert.equal((await get(path, '/nope')).status, 404);
  fail = true;
  assert.equal((await get(path, '/metrics')).status, 500);
  assert.deepEqual(errors, ['/metrics']);

  await admin.close();
  assert.throws(() => lstatSync(path), { code: 'ENOENT' });
});
