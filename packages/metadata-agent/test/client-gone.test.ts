/*
 * Work for a proxy that has gone (issue 21 item 4), on real sockets (the agent's UNIX socket, a stub Nova
 * on loopback), the port cache in front of a resolver whose lookups the test holds and counts:
 *
 * - a request whose proxy connection closed while it waited behind a held lookup gets no port lookup and
 *   no Nova request (MDA_ERR_CLIENT_GONE, nmp_agent_client_gone_total{stage="lookup"});
 * - a proxy that leaves while its lookup is under way does not cut the lookup: it finishes and fills the
 *   cache, Nova is not asked (stage "nova"), and the next request for that port is served from the cache.
 *
 * "Waited behind" is what a busy agent has: the request and the proxy's close in the socket buffer
 * together. spawnSync makes exactly that: the agent's event loop (this process) is blocked while a child
 * process connects, sends the request and closes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import type { InstanceIdentity, InstanceResolver, LookupQuery } from '@nmp/common';
import { promSample, until } from '@nmp/testkit';
import { MetadataAgent } from '../src/agent.js';
import { AgentMetrics } from '../src/metrics.js';
import { CachingResolver } from '../src/resolver/caching-resolver.js';
import { InventoryResolver } from '../src/resolver/inventory-resolver.js';
import { captureLogs, INSTANCE, NET, PORTS, SECRET, startStubNova, tempDir, viaSocket } from './helpers.js';

/** The inventory, but every lookup waits until the test releases it; counts lookups by address. */
class Held implements InstanceResolver {
  readonly #inner = InventoryResolver.fromPorts(PORTS);
  readonly lookups: string[] = [];
  readonly #waiting: Array<() => void> = [];
  async resolve(q: LookupQuery): Promise<InstanceIdentity> {
    this.lookups.push(q.ip);
    await new Promise<void>((release) => this.#waiting.push(release));
    return this.#inner.resolve(q);
  }
  release(): void {
    for (const r of this.#waiting.splice(0)) r();
  }
  get held(): number {
    return this.#waiting.length;
  }
  async close(): Promise<void> {}
}

async function setup(t: import('node:test').TestContext) {
  const nova = await startStubNova(t);
  const held = new Held();
  const resolver = new CachingResolver(held, { ttlMs: 5_000, negativeTtlMs: 1_000, maxEntries: 100 });
  const metrics = new AgentMetrics();
  const logs = captureLogs('metadata-agent');
  const socketPath = join(tempDir(t), 'metadata_proxy');
  const agent = new MetadataAgent({
    socketPath,
    socketMode: 0o644,
    backlog: 128,
    sharedSecret: SECRET,
    resolver,
    logger: logs.logger,
    maxBodySize: 65536,
    nova: { host: '127.0.0.1', port: nova.port, protocol: 'http', timeoutMs: 2000 },
    metrics,
  });
  await agent.listen();
  t.after(() => agent.close(100));
  return { nova, held, metrics, logs, socketPath };
}

const headers = (ip: string) => ({ 'x-neutron-network-id': NET, 'x-forwarded-for': ip });

test('a request whose proxy closed while it waited gets no port lookup and no Nova request', async (t) => {
  const { nova, held, metrics, logs, socketPath } = await setup(t);
  // The first request's lookup (10.0.0.5) is under way and held: the agent is "busy".
  const first = viaSocket(socketPath, {
    path: '/latest/meta-data/instance-id',
    headers: headers('10.0.0.5'),
  });
  await until('the first lookup', () => held.held === 1);

  // A second proxy connection sends a request for another port (10.0.0.6) and closes it at once,
  // both waiting for the agent to read them.
  const raw = `GET /openstack/latest/meta_data.json HTTP/1.1\\r\\nHost: agent\\r\\nX-Neutron-Network-ID: ${NET}\\r\\nX-Forwarded-For: 10.0.0.6\\r\\n\\r\\n`;
  const child = spawnSync(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').connect(${JSON.stringify(socketPath)}, () => { s.write('${raw}'); s.end(); });
       s.on('error', () => {}); s.on('data', () => {}); s.on('close', () => process.exit(0));
       setTimeout(() => process.exit(0), 200);`,
    ],
    { timeout: 10_000 },
  );
  assert.equal(child.status, 0, String(child.stderr));
  // Time for the agent to read it (and, without the check, to start its lookup).
  await new Promise((r) => setTimeout(r, 100));
  held.release();
  assert.equal((await first).status, 200);
  // Time for a lookup or a Nova request the agent should not have made.
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(held.lookups, ['10.0.0.5'], 'no lookup for the request nobody waits for');
  await until('the dropped request', () => logs.lines().some((l) => l.code === 'MDA_ERR_CLIENT_GONE'));
  assert.deepEqual(
    nova.seen.map((s) => s.url),
    ['/latest/meta-data/instance-id'],
  );
  const line = logs.lines().find((l) => l.code === 'MDA_ERR_CLIENT_GONE')!;
  assert.equal(line.level, 'info');
  assert.equal(line.skipped, 'lookup');
  assert.equal(line.path, '/openstack/latest/meta_data.json');
  const text = await metrics.render();
  assert.equal(promSample(text, 'nmp_agent_client_gone_total', { stage: 'lookup' }), 1);
  assert.equal(promSample(text, 'nmp_agent_client_gone_total', { stage: 'nova' }), 0);
});

test('a proxy that leaves during the lookup: the lookup finishes and fills the cache, Nova is not asked', async (t) => {
  const { nova, held, metrics, logs, socketPath } = await setup(t);
  const req = request({
    socketPath,
    path: '/latest/meta-data/instance-id',
    headers: headers('10.0.0.5'),
  });
  req.on('error', () => {});
  req.end();
  await until('the lookup', () => held.held === 1);
  req.destroy(); // the instance gave up; the proxy cuts its agent connection
  await new Promise((r) => setTimeout(r, 50));
  held.release();
  await until('the dropped request', () => logs.lines().some((l) => l.code === 'MDA_ERR_CLIENT_GONE'));
  assert.equal(nova.seen.length, 0, 'Nova was asked for a request nobody waits for');
  assert.equal(logs.lines().find((l) => l.code === 'MDA_ERR_CLIENT_GONE')!.skipped, 'nova');

  // The instance's next request: from the cache the lookup filled, no second lookup.
  const next = await viaSocket(socketPath, {
    path: '/latest/meta-data/instance-id',
    headers: headers('10.0.0.5'),
  });
  assert.equal(next.status, 200);
  assert.deepEqual(held.lookups, ['10.0.0.5']);
  assert.equal(nova.seen.length, 1);
  assert.equal(nova.seen[0]!.headers['x-instance-id'], INSTANCE);
  const text = await metrics.render();
  assert.equal(promSample(text, 'nmp_agent_client_gone_total', { stage: 'nova' }), 1);
  assert.equal(promSample(text, 'nmp_agent_client_gone_total', { stage: 'lookup' }), 0);
});
