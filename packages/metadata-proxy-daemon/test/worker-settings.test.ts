/*
 * Daemon mode serves with every setting the standalone proxy has (no root needed here): the daemon's
 * configuration -> the worker's settings (workerSettingsFor, on servingSettings), and a ServingWorker built
 * from them really applies them on a listener: [metadata_ssrf] refusals, the per-source cap, the
 * first-byte and client timeouts, the rate limit per attachment, and metrics it renders for the admin socket.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { loadConfig } from '@nmp/common';
import { generateNodeKey, servingSettings } from '@nmp/ns-metadata-proxy';
import { captureLogs, tempDir } from '@nmp/testkit';
import { daemonOptions } from '../src/options.js';
import { ServingWorker, type WorkerSettings } from '../src/worker.js';
import { workerSettingsFor } from '../src/worker-settings.js';

function daemonConfig(dir: string, ini: string) {
  const file = join(dir, 'daemon.ini');
  writeFileSync(file, ini);
  return loadConfig(daemonOptions, { flags: { 'config-file': file }, env: {} }).config;
}

const INI = (dir: string) =>
  [
    '[DEFAULT]',
    `state_path = ${dir}`,
    'max_connections_per_source = 3',
    'timeout_first_byte = 0.3',
    `admin_socket = ${join(dir, 'admin.sock')}`,
    '[metadata_haproxy]',
    'timeout_client = 2',
    '[metadata_rate_limiting]',
    'rate_limit_enabled = true',
    'base_query_rate_limit = 4',
    'burst_query_rate_limit = 4',
    '[metadata_ssrf]',
    'required_header = Metadata-Flavor: OpenStack',
    '',
  ].join('\n');

test('workerSettingsFor: the daemon config maps to the same serving settings as the proxy, all of them', (t) => {
  const dir = tempDir(t, 'nmp-worker-settings-');
  const config = daemonConfig(dir, INI(dir));
  const w = workerSettingsFor(config);
  const s = servingSettings(config);
  assert.equal(w.socketPath, join(dir, 'metadata_proxy'));
  assert.deepEqual(w.limits, s.limits);
  assert.equal(w.limits.clientTimeoutMs, 2_000, 'timeout_client');
  assert.equal(w.limits.maxConnectionsPerSource, 3);
  assert.equal(w.limits.firstByteTimeoutMs, 300);
  assert.deepEqual(w.rateLimit, s.rateLimit);
  assert.equal(w.rateLimit?.baseLimit, 4);
  assert.deepEqual(w.ssrf?.requiredHeader, { name: 'metadata-flavor', value: 'OpenStack' });
  assert.equal(w.metrics, true, 'admin_socket set: metrics are kept');
  assert.equal(w.logLevel, 'info');
  // It travels over IPC as JSON: nothing may be lost on the way.
  assert.deepEqual(JSON.parse(JSON.stringify(w)), w);
  const off = workerSettingsFor(daemonConfig(dir, `[DEFAULT]\nstate_path = ${dir}\n`));
  assert.equal(off.metrics, false);
  assert.equal(off.ssrf, undefined);
  assert.equal(off.rateLimit, undefined);
});

/** A listening socket as a listener helper hands one over. */
async function listeningHandle(t: TestContext): Promise<{ handle: Server; port: number }> {
  const handle = createServer();
  await new Promise<void>((r) => handle.listen(0, '127.0.0.1', () => r()));
  t.after(() => handle.close());
  return { handle, port: (handle.address() as { port: number }).port };
}

function get(port: number, path: string, headers: Record<string, string> = {}, localAddress?: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      data += d;
    });
    s.on('error', reject);
    s.on('close', () => resolve({ status: Number(data.split(' ')[1]), body: data }));
    const h = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${h}\r\n`);
  });
}

test('a ServingWorker built from those settings enforces them and renders metrics', async (t) => {
  const dir = tempDir(t, 'nmp-worker-settings-');
  const settings: WorkerSettings = workerSettingsFor(daemonConfig(dir, INI(dir)));
  // A stand-in agent on the socket the settings name: 200 for anything.
  const agent = createHttpServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => agent.listen(settings.socketPath, () => r()));
  t.after(() => new Promise((r) => agent.close(r)));
  const logs = captureLogs();
  const worker = new ServingWorker(settings, logs.logger, generateNodeKey());
  t.after(() => worker.close());
  const { handle, port } = await listeningHandle(t);
  const reply = await worker.handle(
    { op: 'listen', seq: 1, key: 'qdhcp-x', identity: { mode: 'network', id: 'net-x' }, bind: '127.0.0.1:0' },
    handle,
  );
  assert.equal(reply.ok, true, JSON.stringify(reply));

  // [metadata_ssrf] required_header.
  assert.equal((await get(port, '/openstack')).status, 403);
  assert.equal((await get(port, '/openstack', { 'Metadata-Flavor': 'OpenStack' })).status, 200);
  // [metadata_rate_limiting]: 4 per window from this source; one used above (the SSRF refusal runs before
  // the limiter and does not count).
  const statuses = [];
  for (let i = 0; i < 4; i++)
    statuses.push((await get(port, '/', { 'Metadata-Flavor': 'OpenStack' })).status);
  assert.deepEqual(statuses, [200, 200, 200, 429]);
  // Per-source cap 3 and first-byte timeout 0.3 s, from another source.
  const silent = await Promise.all(
    Array.from(
      { length: 5 },
      () =>
        new Promise<{ closedAfter: number }>((resolve) => {
          const started = Date.now();
          const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.7' });
          s.on('error', () => {});
          s.on('close', () => resolve({ closedAfter: Date.now() - started }));
        }),
    ),
  );
  const fast = silent.filter((s) => s.closedAfter < 200).length;
  const timedOut = silent.filter((s) => s.closedAfter >= 250 && s.closedAfter < 3000).length;
  assert.deepEqual({ fast, timedOut }, { fast: 2, timedOut: 3 }, JSON.stringify(silent));

  const metrics = await worker.handle({ op: 'metrics', seq: 2 }, undefined);
  assert.equal(metrics.ok, true);
  const text = (metrics as { metrics: string }).metrics;
  assert.match(text, /^nmp_proxy_refused_total\{reason="header_missing"\} 1$/m);
  assert.match(text, /^nmp_proxy_refused_total\{reason="rate_limited"\} 1$/m);
  assert.match(text, /^nmp_proxy_refused_total\{reason="source_connections"\} 2$/m);
  assert.match(text, /^nmp_proxy_refused_total\{reason="first_byte_timeout"\} 3$/m);
  assert.match(text, /^nmp_proxy_requests_total\{status="200"\} 4$/m);
  assert.match(text, /^nmp_proxy_info\{mode="daemon",id="",version="\d+\.\d+\.\d+"\} 1$/m);
  assert.match(text, /^process_resident_memory_bytes \d+/m);
});

test('token mode in daemon mode: the worker signs with the node key the supervisor hands it', async (t) => {
  const dir = tempDir(t, 'nmp-worker-settings-');
  const settings = workerSettingsFor(
    daemonConfig(dir, `[DEFAULT]\nstate_path = ${dir}\n[metadata_ssrf]\ntoken_mode = required\n`),
  );
  const agent = createHttpServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => agent.listen(settings.socketPath, () => r()));
  t.after(() => new Promise((r) => agent.close(r)));
  const key = generateNodeKey();
  const serve = async (worker: ServingWorker) => {
    t.after(() => worker.close());
    const { handle, port } = await listeningHandle(t);
    const r = await worker.handle(
      { op: 'listen', seq: 1, key: 'ns', identity: { mode: 'network', id: 'net-x' }, bind: '127.0.0.1:0' },
      handle,
    );
    assert.equal(r.ok, true, JSON.stringify(r));
    return port;
  };
  const one = await serve(new ServingWorker(settings, captureLogs().logger, key));
  assert.equal((await get(one, '/openstack')).status, 401, 'token_mode = required applies');
  const put = await new Promise<string>((resolve, reject) => {
    const s = connect({ port: one, host: '127.0.0.1' });
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      data += d;
    });
    s.on('error', reject);
    s.on('close', () => resolve(data));
    s.write(
      'PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nConnection: close\r\n\r\n',
    );
  });
  assert.match(put, /^HTTP\/1\.1 200 /);
  const token = put.slice(put.indexOf('\r\n\r\n') + 4);
  assert.equal((await get(one, '/openstack', { 'X-aws-ec2-metadata-token': token })).status, 200);
  // A restarted worker (same key from the supervisor) accepts the tokens the old one issued.
  const two = await serve(new ServingWorker(settings, captureLogs().logger, key));
  assert.equal((await get(two, '/openstack', { 'X-aws-ec2-metadata-token': token })).status, 200);
  // Without the supervisor's key it could not have started in token mode.
  assert.throws(() => new ServingWorker(settings, captureLogs().logger), /needs a node key/);
});
