/*
 * What the agent's handler does with the lag gate's answer (@nmp/common lag-gate.ts, tested with the proxy's
 * tests), on a hand-driven gate: an agent that keeps up starts the port lookup within the 'request'
 * event that parsed the request; one that is behind (or does not know yet) waits a poll phase first, to
 * see a close waiting behind the request. Ordering only: nothing here measures time.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import type { InstanceIdentity, InstanceResolver, LagGate, LookupQuery } from '@nmp/common';
import { behindGate, keepingUpGate } from '@nmp/testkit';
import { AgentHandler } from '../src/handler.js';
import { NovaClient } from '../src/nova-client.js';
import { InventoryResolver } from '../src/resolver/inventory-resolver.js';
import { InstanceSigner } from '../src/signer.js';
import { captureLogs, INSTANCE, NET, PORTS, SECRET, startStubNova, tempDir, viaSocket } from './helpers.js';

/** Lookups counted; `lookupsAtRequest[i]`: how many had started when request i's event ended. */
async function agentWith(t: import('node:test').TestContext, gate: LagGate) {
  const nova = await startStubNova(t);
  const inner = InventoryResolver.fromPorts(PORTS);
  let lookups = 0;
  const resolver: InstanceResolver = {
    resolve(q: LookupQuery): Promise<InstanceIdentity> {
      lookups++;
      return inner.resolve(q);
    },
    close: async () => {},
  };
  const client = new NovaClient({ host: '127.0.0.1', port: nova.port, protocol: 'http', timeoutMs: 2000 });
  t.after(() => client.close());
  const handler = new AgentHandler({
    resolver,
    nova: client,
    signer: new InstanceSigner(SECRET),
    logger: captureLogs('metadata-agent').logger,
    maxBodySize: 65536,
    lag: gate,
  });
  const lookupsAtRequest: number[] = [];
  const server = createServer(handler.handle);
  // Runs right after the handler, within the same 'request' event.
  server.on('request', () => lookupsAtRequest.push(lookups));
  const socketPath = join(tempDir(t), 'agent.sock');
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  const get = () =>
    viaSocket(socketPath, {
      path: '/latest/meta-data/instance-id',
      headers: { 'x-neutron-network-id': NET, 'x-forwarded-for': '10.0.0.5' },
    });
  return { nova, get, lookupsAtRequest };
}

test('an agent that keeps up starts the lookup within the request event: no poll phase waited', async (t) => {
  const { nova, get, lookupsAtRequest } = await agentWith(t, keepingUpGate());
  for (let i = 0; i < 3; i++) assert.equal((await get()).status, 200);
  assert.deepEqual(lookupsAtRequest, [1, 2, 3]);
  assert.equal(nova.seen.length, 3);
  assert.equal(nova.seen[0]!.headers['x-instance-id'], INSTANCE);
});

test('an agent that is behind looks up after the request event (it looks for a close first)', async (t) => {
  const { nova, get, lookupsAtRequest } = await agentWith(t, behindGate());
  for (let i = 0; i < 3; i++) assert.equal((await get()).status, 200);
  assert.deepEqual(lookupsAtRequest, [0, 1, 2]);
  assert.equal(nova.seen.length, 3);
});
