/*
 * The agent's metrics on a real socket: requests by mode and status, request and upstream latency,
 * failures, connections held by the proxies, and the cache figures read at scrape time.
 */
import assert from 'node:assert/strict';
import { Agent as HttpAgent, request } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type InstanceResolver, silentLogger } from '@nmp/common';
import { MetadataAgent } from '../src/agent.js';
import { AgentMetrics } from '../src/metrics.js';
import { CachingResolver } from '../src/resolver/caching-resolver.js';
import { InventoryResolver } from '../src/resolver/inventory-resolver.js';
import { NET, PORTS, ROUTER, startStubNova, tempDir, viaSocket } from './helpers.js';
import { sample } from './prom-text.js';

async function start(t: TestContext, novaPort: number, metrics: AgentMetrics, cached = false) {
  const inventory = InventoryResolver.fromPorts(PORTS);
  // Behind the cache, lookups take a while (as Neutron's do), so that concurrent ones overlap.
  const slow: InstanceResolver = {
    resolve: (q) => new Promise((resolve) => setTimeout(resolve, 50)).then(() => inventory.resolve(q)),
    close: async () => {},
  };
  const cache = cached
    ? new CachingResolver(slow, { ttlMs: 60_000, negativeTtlMs: 0, maxEntries: 100 })
    : undefined;
  const agent = new MetadataAgent({
    socketPath: join(tempDir(t), 'metadata_proxy'),
    socketMode: 0o644,
    backlog: 128,
    sharedSecret: 's',
    resolver: cache ?? inventory,
    logger: silentLogger(),
    maxBodySize: 65536,
    metrics,
    nova: { host: '127.0.0.1', port: novaPort, protocol: 'http', timeoutMs: 2000 },
  });
  metrics.setSources({
    connections: () => agent.connections,
    inFlight: () => agent.handler.inFlight,
    ...(cache ? { cache: () => cache.stats } : {}),
  });
  await agent.listen();
  t.after(() => agent.close(100));
  return agent;
}

const net = (xff: string) => ({ 'x-neutron-network-id': NET, 'x-forwarded-for': xff });

test('requests are counted by mode and status, with their latency and the Nova calls', async (t) => {
  const nova = await startStubNova(t);
  const metrics = new AgentMetrics();
  const agent = await start(t, nova.port, metrics);
  assert.equal((await viaSocket(agent.socketPath, { headers: net('10.0.0.5') })).status, 200);
  assert.equal((await viaSocket(agent.socketPath, { headers: net('10.0.0.99') })).status, 404);
  assert.equal(
    (await viaSocket(agent.socketPath, { headers: { 'x-forwarded-for': '10.0.0.5' } })).status,
    400,
  );
  const routed = await viaSocket(agent.socketPath, {
    headers: { 'x-neutron-router-id': ROUTER, 'x-forwarded-for': '10.0.0.6' },
  });
  assert.equal(routed.status, 200);
  nova.respond = (_req, res) => {
    res.writeHead(403, { 'content-length': 0 });
    res.end();
  };
  assert.equal((await viaSocket(agent.socketPath, { headers: net('10.0.0.5') })).status, 403);

  const text = await metrics.render();
  assert.equal(sample(text, 'nmp_agent_requests_total', { mode: 'network', status: '200' }), 1);
  assert.equal(sample(text, 'nmp_agent_requests_total', { mode: 'network', status: '404' }), 1);
  assert.equal(sample(text, 'nmp_agent_requests_total', { mode: 'network', status: '403' }), 1);
  assert.equal(sample(text, 'nmp_agent_requests_total', { mode: 'network', status: '503' }), 0);
  assert.equal(sample(text, 'nmp_agent_requests_total', { mode: 'none', status: '400' }), 1);
  assert.equal(sample(text, 'nmp_agent_requests_total', { mode: 'router', status: '200' }), 1);
  assert.equal(sample(text, 'nmp_agent_request_duration_seconds_count', { mode: 'network' }), 3);
  assert.equal(sample(text, 'nmp_agent_request_duration_seconds_count', { mode: 'router' }), 1);
  assert.ok(sample(text, 'nmp_agent_request_duration_seconds_sum', { mode: 'network' })! > 0);
  // Three requests reached Nova (200, 200 via the router, 403); a Nova 4xx is an answer.
  assert.equal(
    sample(text, 'nmp_upstream_duration_seconds_count', { upstream: 'nova', outcome: 'answered' }),
    3,
  );
  assert.equal(
    sample(text, 'nmp_upstream_duration_seconds_count', { upstream: 'nova', outcome: 'failed' }),
    0,
  );
  assert.equal(sample(text, 'nmp_agent_requests_in_flight'), 0);

  // Nova gone: the failure is counted as such, and the 503 by status.
  await new Promise<void>((resolve) => {
    nova.server.close(() => resolve());
    nova.server.closeAllConnections();
  });
  assert.equal((await viaSocket(agent.socketPath, { headers: net('10.0.0.5') })).status, 503);
  const after = await metrics.render();
  assert.equal(
    sample(after, 'nmp_upstream_duration_seconds_count', { upstream: 'nova', outcome: 'failed' }),
    1,
  );
  assert.equal(sample(after, 'nmp_agent_requests_total', { mode: 'network', status: '503' }), 1);
});

test('proxies connected: connections open on the socket, counted as they come and go', async (t) => {
  const nova = await startStubNova(t);
  const metrics = new AgentMetrics();
  const agent = await start(t, nova.port, metrics);
  const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 3 });
  t.after(() => keepAlive.destroy());
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        { socketPath: agent.socketPath, path: '/', headers: net('10.0.0.5'), agent: keepAlive },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
  assert.deepEqual(await Promise.all([get(), get(), get()]), [200, 200, 200]);
  assert.equal(sample(await metrics.render(), 'nmp_agent_proxies_connected'), 3);
  keepAlive.destroy();
  const deadline = Date.now() + 2000;
  while (agent.connections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sample(await metrics.render(), 'nmp_agent_proxies_connected'), 0);
});

test('cache hits, misses and coalesced waits come from the cache at scrape time', async (t) => {
  const nova = await startStubNova(t);
  const metrics = new AgentMetrics();
  const agent = await start(t, nova.port, metrics, true);
  // Five at once for one address: one lookup, four wait for it; then one more from the cache.
  const first = await Promise.all(
    Array.from({ length: 5 }, () => viaSocket(agent.socketPath, { headers: net('10.0.0.5') })),
  );
  assert.deepEqual(
    first.map((r) => r.status),
    [200, 200, 200, 200, 200],
  );
  assert.equal((await viaSocket(agent.socketPath, { headers: net('10.0.0.5') })).status, 200);
  const text = await metrics.render();
  assert.equal(sample(text, 'nmp_port_cache_misses_total'), 1);
  assert.equal(sample(text, 'nmp_port_cache_coalesced_total'), 4);
  assert.equal(sample(text, 'nmp_port_cache_hits_total'), 1);
  assert.equal(sample(text, 'nmp_port_cache_entries'), 1);
  // Scraping twice does not double anything.
  assert.equal(sample(await metrics.render(), 'nmp_port_cache_misses_total'), 1);
});

test('every family is present (at zero) before any traffic, with HELP and TYPE', async () => {
  const metrics = new AgentMetrics({ defaultMetrics: true, version: '9.9.9' });
  const text = await metrics.render();
  for (const [name, type] of [
    ['nmp_agent_requests_total', 'counter'],
    ['nmp_agent_request_duration_seconds', 'histogram'],
    ['nmp_agent_requests_in_flight', 'gauge'],
    ['nmp_agent_proxies_connected', 'gauge'],
    ['nmp_upstream_duration_seconds', 'histogram'],
    ['nmp_upstream_last_answer_timestamp_seconds', 'gauge'],
    ['nmp_port_cache_hits_total', 'counter'],
    ['nmp_port_cache_misses_total', 'counter'],
    ['nmp_port_cache_coalesced_total', 'counter'],
    ['nmp_keystone_tokens_issued_total', 'counter'],
    ['nmp_keystone_auth_failures_total', 'counter'],
    ['nmp_neutron_lookup_failures_total', 'counter'],
    ['nmp_agent_config_reloads_total', 'counter'],
    ['nmp_agent_info', 'gauge'],
    ['process_cpu_seconds_total', 'counter'],
    ['nodejs_eventloop_lag_seconds', 'gauge'],
  ]) {
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
    assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), name);
  }
  assert.equal(sample(text, 'nmp_agent_info', { version: '9.9.9' }), 1);
  for (const upstream of ['nova', 'neutron', 'keystone'])
    assert.equal(sample(text, 'nmp_upstream_duration_seconds_count', { upstream, outcome: 'answered' }), 0);
});
