/*
 * The agent's lag gate (src/lag-gate.ts, a copy of the proxy's) on a hand-driven clock and timer, and what
 * the handler does with its answer: an agent that keeps up starts the port lookup within the 'request'
 * event that parsed the request; one that is behind (or does not know yet) waits a poll phase first, to
 * see a close waiting behind the request. Ordering only: nothing here measures time.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import type { InstanceIdentity, InstanceResolver, LookupQuery } from '@nmp/common';
import { AgentHandler } from '../src/handler.js';
import { LAG_LIMIT_MS, LAG_PERIOD_MS, LagGate } from '../src/lag-gate.js';
import { NovaClient } from '../src/nova-client.js';
import { InventoryResolver } from '../src/resolver/inventory-resolver.js';
import { InstanceSigner } from '../src/signer.js';
import { captureLogs, INSTANCE, NET, PORTS, SECRET, startStubNova, tempDir, viaSocket } from './helpers.js';

function handGate() {
  const c = { ms: 1_000, idle: 500, tick: undefined as (() => void) | undefined };
  const gate = new LagGate({
    now: () => c.ms,
    idle: () => c.idle,
    every: (tick, ms) => {
      assert.equal(ms, LAG_PERIOD_MS);
      c.tick = tick;
      return () => {
        c.tick = undefined;
      };
    },
  });
  /** Move the clock by `ms` and fire the timer; `waited`: the loop waited for I/O meanwhile. */
  const after = (ms: number, waited = true) => {
    c.ms += ms;
    if (waited) c.idle += 0.01;
    c.tick!();
  };
  return { gate, c, after };
}

test('behind until a tick on time after a wait for I/O; a late tick or a period without one is behind', () => {
  const { gate, c, after } = handGate();
  assert.equal(gate.behind(), true, 'not known yet');
  after(LAG_PERIOD_MS);
  assert.equal(gate.behind(), false);
  after(LAG_PERIOD_MS + LAG_LIMIT_MS + 1);
  assert.equal(gate.behind(), true, 'late');
  after(LAG_PERIOD_MS, false);
  assert.equal(gate.behind(), true, 'never waited for I/O');
  after(LAG_PERIOD_MS);
  assert.equal(gate.behind(), false);
  after(LAG_PERIOD_MS);
  after(LAG_PERIOD_MS); // a period nobody asked in: stops
  assert.equal(c.tick, undefined);
  assert.equal(gate.behind(), true, 'restarted: not known yet');
});

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
  const { gate, after } = handGate();
  gate.behind();
  after(LAG_PERIOD_MS);
  const { nova, get, lookupsAtRequest } = await agentWith(t, gate);
  for (let i = 0; i < 3; i++) assert.equal((await get()).status, 200);
  assert.deepEqual(lookupsAtRequest, [1, 2, 3]);
  assert.equal(nova.seen.length, 3);
  assert.equal(nova.seen[0]!.headers['x-instance-id'], INSTANCE);
});

test('an agent that is behind looks up after the request event (it looks for a close first)', async (t) => {
  const { gate, after } = handGate();
  gate.behind();
  after(LAG_PERIOD_MS, false);
  const { nova, get, lookupsAtRequest } = await agentWith(t, gate);
  for (let i = 0; i < 3; i++) assert.equal((await get()).status, 200);
  assert.deepEqual(lookupsAtRequest, [0, 1, 2]);
  assert.equal(nova.seen.length, 3);
});
