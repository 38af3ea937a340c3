/*
 * The admin listener of the agent CLI in a real chain (dev Nova, fake Keystone + Neutron, agent, proxy):
 * after some traffic, `curl --unix-socket <admin socket> http://x/metrics` shows every family with the
 * traffic in it; /healthz answers; /readyz is 200 while Nova and Neutron answer and 503 with the reasons
 * once both are gone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { createFakeOpenStack, type FakePort } from '@nmp/openstack-fakes';
import { promSample } from '@nmp/testkit';
import {
  CLI,
  freePort,
  SAMPLE_INVENTORY,
  SAMPLE_NETWORK,
  sleep,
  spawnCli,
  tempDir,
} from './fault-harness.js';

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** GET over a UNIX socket with curl, as an operator would (node's client when curl is not installed). */
function curlUnix(socketPath: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      [
        '-sS',
        '--max-time',
        '10',
        '--unix-socket',
        socketPath,
        '-w',
        '\n%{http_code}',
        `http://localhost${path}`,
      ],
      { encoding: 'utf8', timeout: 15_000 },
      (err, stdout) => {
        if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
          viaNode({ socketPath, path }).then(resolve, reject);
          return;
        }
        if (err) return reject(err);
        const cut = stdout.lastIndexOf('\n');
        resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) });
      },
    );
  });
}

function viaNode(options: {
  socketPath?: string;
  port?: number;
  path: string;
  headers?: Record<string, string>;
}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', ...options, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('after traffic, /metrics on the admin socket shows every family; /healthz and /readyz', async (t) => {
  const dir = tempDir(t, 'nmp-admin-');
  const secret = 'admin-metrics-secret';
  const ports = (JSON.parse(readFileSync(SAMPLE_INVENTORY, 'utf8')) as { ports: FakePort[] }).ports;
  // Slow enough that ten concurrent lookups for one address overlap (and are coalesced).
  const openstack = createFakeOpenStack({ ports, latencyMs: 300 });
  await openstack.listen();
  t.after(() => openstack.close());

  const novaPort = await freePort();
  const nova = spawnCli(t, 'nova', CLI.nova, ['--port', String(novaPort), '--log-level', 'warn'], {
    NMP_METADATA_PROXY_SHARED_SECRET: secret,
  });
  await nova.waitFor(/listening on http/);

  const socket = join(dir, 'metadata_proxy');
  const conf = join(dir, 'metadata_agent.ini');
  writeFileSync(
    conf,
    [
      '[DEFAULT]',
      `metadata_proxy_socket = ${socket}`,
      'nova_metadata_host = 127.0.0.1',
      `nova_metadata_port = ${novaPort}`,
      `metadata_proxy_shared_secret = ${secret}`,
      'readiness_window = 1',
      '[neutron]',
      `auth_url = ${openstack.authUrl}`,
      'username = nmp-agent',
      'password = fake-password',
      'user_domain_name = Default',
      'project_name = service',
      'project_domain_name = Default',
      'timeout = 2',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const agent = spawnCli(t, 'agent', CLI.agent, ['--config-file', conf]);
  await agent.waitFor(/metadata-agent listening/);
  const admin = `${socket}.admin`;
  assert.equal(statSync(admin).mode & 0o777, 0o600, 'the admin socket is owner-only');

  const proxyPort = await freePort();
  const proxy = spawnCli(t, 'proxy', CLI.proxy, [
    '--bind',
    `127.0.0.1:${proxyPort}`,
    '--network-id',
    SAMPLE_NETWORK,
    '--metadata-proxy-socket',
    socket,
  ]);
  await proxy.waitFor(/ns-metadata-proxy listening/);

  // Traffic: ten at once for one instance (one lookup, the rest wait for it), five more from the cache,
  // an unknown path (Nova's 404), an unknown address and a request without identity headers.
  const path = '/openstack/latest/meta_data.json';
  const burst = await Promise.all(Array.from({ length: 10 }, () => viaNode({ port: proxyPort, path })));
  assert.deepEqual(
    burst.map((r) => r.status),
    Array(10).fill(200),
  );
  for (let i = 0; i < 5; i++) assert.equal((await viaNode({ port: proxyPort, path })).status, 200);
  assert.equal((await viaNode({ port: proxyPort, path: '/openstack/latest/nope' })).status, 404);
  const direct = { socketPath: socket, path };
  assert.equal(
    (
      await viaNode({
        ...direct,
        headers: { 'x-neutron-network-id': SAMPLE_NETWORK, 'x-forwarded-for': '10.9.9.9' },
      })
    ).status,
    404,
  );
  assert.equal((await viaNode({ ...direct, headers: { 'x-forwarded-for': '10.9.9.9' } })).status, 400);

  const m = await curlUnix(admin, '/metrics');
  assert.equal(m.status, 200);
  const text = m.body;
  const at = (name: string, labels: Record<string, string> = {}) => {
    const v = promSample(text, name, labels);
    assert.notEqual(v, undefined, `${name} ${JSON.stringify(labels)} missing`);
    return v!;
  };
  assert.equal(at('nmp_agent_requests_total', { mode: 'network', status: '200' }), 15);
  assert.equal(at('nmp_agent_requests_total', { mode: 'network', status: '404' }), 2);
  assert.equal(at('nmp_agent_requests_total', { mode: 'none', status: '400' }), 1);
  assert.equal(at('nmp_agent_request_duration_seconds_count', { mode: 'network' }), 17);
  assert.ok(at('nmp_agent_request_duration_seconds_bucket', { mode: 'network', le: '+Inf' }) === 17);
  assert.equal(at('nmp_upstream_duration_seconds_count', { upstream: 'nova', outcome: 'answered' }), 16);
  assert.ok(at('nmp_upstream_duration_seconds_count', { upstream: 'keystone', outcome: 'answered' }) >= 1);
  assert.ok(at('nmp_upstream_duration_seconds_count', { upstream: 'neutron', outcome: 'answered' }) >= 2);
  assert.ok(at('nmp_upstream_duration_seconds_sum', { upstream: 'neutron', outcome: 'answered' }) >= 0.3);
  // 17 lookups: the burst's first and the unknown address miss; the burst's others wait for the first
  // (a straggler on a busy machine may find the answer cached instead), the rest are hits.
  assert.equal(at('nmp_port_cache_misses_total'), 2);
  assert.ok(at('nmp_port_cache_coalesced_total') >= 5);
  assert.equal(at('nmp_port_cache_coalesced_total') + at('nmp_port_cache_hits_total'), 15);
  assert.equal(at('nmp_port_cache_refreshes_total'), 1, "Nova's 404 to a cached identity: one fresh lookup");
  assert.ok(at('nmp_agent_proxies_connected') >= 1, 'the proxy keeps its pooled connection open');
  assert.equal(at('nmp_agent_requests_in_flight'), 0);
  assert.equal(at('nmp_keystone_tokens_issued_total'), 1);
  assert.equal(at('nmp_neutron_lookup_failures_total'), 0);
  assert.ok(at('nmp_upstream_last_answer_timestamp_seconds', { upstream: 'nova' }) > Date.now() / 1000 - 60);
  assert.ok(
    at('nmp_upstream_last_answer_timestamp_seconds', { upstream: 'resolver' }) > Date.now() / 1000 - 60,
  );
  assert.equal(at('nmp_agent_config_reloads_total', { result: 'success' }), 0);
  assert.ok(at('process_resident_memory_bytes') > 0);
  assert.match(text, /^nmp_agent_info\{version="[^"]+"\} 1$/m);

  assert.deepEqual(await curlUnix(admin, '/healthz'), { status: 200, body: 'ok\n' });
  const ready = await curlUnix(admin, '/readyz');
  assert.equal(ready.status, 200, ready.body);
  assert.match(ready.body, /^ready\nnova: ok \(answered .*\)\nresolver: ok \(answered .*\)\n$/);

  // Nova and Neutron gone, the window passes: not ready, and why.
  nova.child.kill('SIGTERM');
  await nova.exited;
  await openstack.close();
  await sleep(1100);
  const down = await curlUnix(admin, '/readyz');
  assert.equal(down.status, 503, down.body);
  assert.match(down.body, /^not ready\n/);
  assert.match(
    down.body,
    /^nova: not ready: no answer for \d+ s; last error: MDA_ERR_NOVA_UNREACHABLE \(ECONNREFUSED\)$/m,
  );
  assert.match(
    down.body,
    /^resolver: not ready: no answer for \d+ s; last error: MDA_ERR_RESOLVER_UNAVAILABLE \(unreachable\)$/m,
  );
  assert.deepEqual(await curlUnix(admin, '/healthz'), { status: 200, body: 'ok\n' });
});
