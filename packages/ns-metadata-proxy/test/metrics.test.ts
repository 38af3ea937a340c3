/*
 * The proxy's metrics module (not wired into the proxy yet): counts and refusals in the text format, every
 * refusal code of ours mapped to a reason, and the admin listener on an owner-only UNIX socket.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lstatSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERRORS } from '@nmp/common';
import { promSample, tempDir, unixHttpGet } from '@nmp/testkit';
import { ProxyAdminServer, ProxyMetrics, REFUSAL_REASONS, refusalReason } from '../src/metrics.js';
import { SSRF_REFUSAL_REASONS } from '../src/ssrf/policy.js';

const get = unixHttpGet;

test('requests by status, latency, refusals by reason, connections and info', async () => {
  const m = new ProxyMetrics({
    mode: 'network',
    id: 'net-1',
    version: '1.2.3',
    extraReasons: ['token_missing', 'path_denied'],
  });
  let connections = 7;
  m.setSources({ connections: () => connections, inFlight: () => 2 });
  m.request(200, 0.002);
  m.request(200, 0.004);
  m.request(429, 0.0001);
  m.refused('rate_limited');
  m.refused('token_missing');
  m.request(418, 0.01);
  m.refusedFor('MDP_ERR_BODY_TOO_LARGE');
  m.refusedFor('MDP_ERR_HEADERS_TOO_LARGE');
  m.refusedFor('MDP_ERR_AGENT_TIMEOUT');
  m.refused('connections');
  const text = await m.render();
  assert.equal(promSample(text, 'nmp_proxy_requests_total', { status: '200' }), 2);
  assert.equal(promSample(text, 'nmp_proxy_requests_total', { status: '429' }), 1);
  assert.equal(promSample(text, 'nmp_proxy_requests_total', { status: '418' }), 1);
  assert.equal(promSample(text, 'nmp_proxy_requests_total', { status: '503' }), 0);
  assert.equal(promSample(text, 'nmp_proxy_request_duration_seconds_count'), 4);
  assert.equal(promSample(text, 'nmp_proxy_request_duration_seconds_bucket', { le: '0.0025' }), 2);
  assert.equal(promSample(text, 'nmp_proxy_refused_total', { reason: 'rate_limited' }), 1);
  assert.equal(promSample(text, 'nmp_proxy_refused_total', { reason: 'too_large' }), 2);
  assert.equal(promSample(text, 'nmp_proxy_refused_total', { reason: 'token_missing' }), 1);
  assert.equal(promSample(text, 'nmp_proxy_refused_total', { reason: 'path_denied' }), 0);
  assert.equal(promSample(text, 'nmp_proxy_refused_total', { reason: 'connections' }), 1);
  assert.equal(promSample(text, 'nmp_proxy_refused_total', { reason: 'timeout' }), 0);
  assert.equal(promSample(text, 'nmp_proxy_refused_total', { reason: 'bad_request' }), 0);
  assert.equal(promSample(text, 'nmp_proxy_connections'), 7);
  assert.equal(promSample(text, 'nmp_proxy_requests_in_flight'), 2);
  assert.equal(promSample(text, 'nmp_proxy_info', { mode: 'network', id: 'net-1', version: '1.2.3' }), 1);
  connections = 0;
  assert.equal(promSample(await m.render(), 'nmp_proxy_connections'), 0);
});

test("every refusal code in the error table maps to a reason; the agent's failures do not", () => {
  const mapped = new Set<string>();
  for (const [code, spec] of Object.entries(ERRORS)) {
    // A request dropped because its instance had gone is not answered at all, so not a refusal.
    if (!code.startsWith('MDP_') || code === 'MDP_ERR_CLIENT_GONE') continue;
    const reason = refusalReason(code);
    // The proxy's own refusals are its 4xx answers and the connection limits; 5xx agent failures are not.
    const isRefusal =
      (spec.status >= 400 && spec.status < 500) ||
      code === 'MDP_ERR_TOO_MANY_CONNECTIONS' ||
      code === 'MDP_ERR_TOO_MANY_SOURCE_CONNECTIONS';
    assert.equal(reason !== undefined, isRefusal, code);
    if (reason) mapped.add(reason);
  }
  assert.deepEqual([...mapped].sort(), [...REFUSAL_REASONS, ...SSRF_REFUSAL_REASONS].sort());
  assert.equal(refusalReason(undefined), undefined);
  assert.equal(refusalReason('client_closed'), undefined);
});

test('the admin listener: UNIX socket mode 0600, /metrics, /healthz, /readyz; removed on close', async (t) => {
  const dir = tempDir(t, 'nmp-proxy-metrics-');
  const socketPath = join(dir, 'run', 'net-1.admin');
  const metrics = new ProxyMetrics({ mode: 'router', id: 'r-1', defaultMetrics: true });
  metrics.request(200, 0.001);
  let reason: string | undefined = 'agent socket unreachable';
  const admin = new ProxyAdminServer({ socketPath, metrics, notReady: () => reason });
  await admin.listen();
  t.after(() => admin.close());
  assert.equal(statSync(socketPath).mode & 0o777, 0o600);

  const m = await get(socketPath, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.type, /^text\/plain; version=0\.0\.4/);
  assert.equal(promSample(m.body, 'nmp_proxy_requests_total', { status: '200' }), 1);
  assert.match(m.body, /^# TYPE process_cpu_seconds_total counter$/m);
  assert.deepEqual(await get(socketPath, '/healthz'), {
    status: 200,
    type: 'text/plain; charset=utf-8',
    body: 'ok\n',
  });
  assert.deepEqual(await get(socketPath, '/readyz'), {
    status: 503,
    type: 'text/plain; charset=utf-8',
    body: 'not ready: agent socket unreachable\n',
  });
  reason = undefined;
  assert.equal((await get(socketPath, '/readyz')).body, 'ready\n');
  assert.equal((await get(socketPath, '/other')).status, 404);
  assert.equal((await get(socketPath, '/metrics', 'DELETE')).status, 405);
  assert.equal((await get(socketPath, '/healthz', 'HEAD')).body, '');
  await admin.close();
  assert.throws(() => statSync(socketPath), { code: 'ENOENT' });
});

test('a stale admin socket is replaced; a live one or a regular file is left alone', async (t) => {
  const dir = tempDir(t, 'nmp-proxy-metrics-');
  const stale = join(dir, 'stale.sock');
  // What a killed process leaves behind: a socket file nobody listens on.
  const child = spawn(
    process.execPath,
    ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', () => reject(new Error('listener exited early')));
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(lstatSync(stale).isSocket(), 'the stale socket file is still there');
  const metrics = new ProxyMetrics();
  const admin = new ProxyAdminServer({ socketPath: stale, metrics });
  await admin.listen();
  t.after(() => admin.close());
  assert.equal((await get(stale, '/healthz')).status, 200);
  await assert.rejects(
    new ProxyAdminServer({ socketPath: stale, metrics }).listen(),
    /another process is listening there/,
  );
  const file = join(dir, 'file');
  writeFileSync(file, 'x');
  await assert.rejects(
    new ProxyAdminServer({ socketPath: file, metrics }).listen(),
    /is not a socket; refusing/,
  );
});
