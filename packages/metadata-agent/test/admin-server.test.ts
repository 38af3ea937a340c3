/*
 * The admin listener: only loopback TCP addresses are accepted, the UNIX socket is owner-only, and the
 * three paths answer what operators and Prometheus expect.
 */
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, silentLogger } from '@nmp/common';
import { AdminServer, isLoopback, parseAdminBind } from '../src/admin-server.js';
import { AgentMetrics } from '../src/metrics.js';
import type { ReadinessReport } from '../src/readiness.js';
import { tempDir } from './helpers.js';

test('admin_bind accepts loopback addresses only', () => {
  assert.deepEqual(parseAdminBind('127.0.0.1:9180'), { host: '127.0.0.1', port: 9180 });
  assert.deepEqual(parseAdminBind('127.10.0.1:0'), { host: '127.10.0.1', port: 0 });
  assert.deepEqual(parseAdminBind('[::1]:9180'), { host: '::1', port: 9180 });
  assert.deepEqual(parseAdminBind('localhost:9180'), { host: '127.0.0.1', port: 9180 });
  for (const bad of [
    '0.0.0.0:9180',
    '[::]:9180',
    '10.0.0.1:9180',
    '169.254.169.254:80',
    '[fe80::a9fe:a9fe]:80',
    '[::ffff:10.0.0.1]:1',
    'example.com:9180',
  ]) {
    assert.match(String(parseAdminBind(bad)), /must be a loopback address/, bad);
  }
  assert.match(String(parseAdminBind('127.0.0.1')), /expected ADDRESS:PORT/);
  assert.match(String(parseAdminBind('127.0.0.1:70000')), /at most 65535/);
  assert.equal(isLoopback('::ffff:127.0.0.1'), true);
  assert.equal(isLoopback('127.1'), false);
  assert.throws(
    () =>
      new AdminServer({
        socketPath: '',
        bind: '0.0.0.0:9180',
        logger: silentLogger(),
        metrics: new AgentMetrics(),
        readiness: { check: async () => report(true) },
      }),
    (err: unknown) => err instanceof ConfigError && /^admin_bind = '0\.0\.0\.0:9180': /.test(err.message),
  );
});

function report(ready: boolean): ReadinessReport {
  return {
    ready,
    stopping: false,
    nova: ready ? { ok: true, lastAnswer: 0 } : { ok: false, lastAnswer: 0, reason: 'never answered' },
    resolver: { ok: true, lastAnswer: Date.UTC(2030, 0, 1) },
  };
}

function get(where: { socketPath: string } | { port: number; host: string }, path: string, method = 'GET') {
  return new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const req = request({ ...where, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

test('the UNIX socket is mode 0600 and serves /metrics, /healthz, /readyz', async (t) => {
  const dir = tempDir(t);
  const socketPath = join(dir, 'admin', 'agent.admin');
  let ready = true;
  const metrics = new AgentMetrics();
  metrics.request('network', 200, 0.01);
  const admin = new AdminServer({
    socketPath,
    bind: '127.0.0.1:0',
    logger: silentLogger(),
    metrics,
    readiness: { check: async () => report(ready) },
  });
  await admin.listen();
  t.after(() => admin.close());
  assert.equal(statSync(socketPath).mode & 0o777, 0o600);
  assert.equal(admin.addresses[0], socketPath);
  assert.match(admin.addresses[1]!, /^127\.0\.0\.1:\d+$/);

  const m = await get({ socketPath }, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.type, /^text\/plain; version=0\.0\.4/);
  assert.match(m.body, /^nmp_agent_requests_total\{mode="network",status="200"\} 1$/m);

  assert.deepEqual(await get({ socketPath }, '/healthz'), {
    status: 200,
    type: 'text/plain; charset=utf-8',
    body: 'ok\n',
  });
  const r = await get({ socketPath }, '/readyz');
  assert.equal(r.status, 200);
  assert.match(
    r.body,
    /^ready\nnova: ok \(answered 1970-01-01T00:00:00\.000Z\)\nresolver: ok \(answered 2030-01-01T00:00:00\.000Z\)\n$/,
  );
  ready = false;
  const nr = await get({ socketPath }, '/readyz');
  assert.equal(nr.status, 503);
  assert.match(nr.body, /^not ready\nnova: not ready: never answered\nresolver: ok/);

  const [host, port] = admin.addresses[1]!.split(':') as [string, string];
  assert.equal((await get({ host, port: Number(port) }, '/healthz')).status, 200);
  assert.equal((await get({ socketPath }, '/nope')).status, 404);
  assert.equal((await get({ socketPath }, '/metrics', 'POST')).status, 405);
  const head = await get({ socketPath }, '/healthz', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');

  await admin.close();
  assert.throws(() => statSync(socketPath), { code: 'ENOENT' });
});

test('a path that is not a socket is never removed; a live admin socket is not stolen', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'x');
  const options = {
    bind: '',
    logger: silentLogger(),
    metrics: new AgentMetrics(),
    readiness: { check: async () => report(true) },
  };
  await assert.rejects(new AdminServer({ ...options, socketPath: file }).listen(), {
    message: `admin_socket ${file} exists and is not a socket; refusing to remove it`,
  });
  const live = join(dir, 'live.sock');
  const first = new AdminServer({ ...options, socketPath: live });
  await first.listen();
  t.after(() => first.close());
  await assert.rejects(
    new AdminServer({ ...options, socketPath: live }).listen(),
    /another process is listening there/,
  );
});
