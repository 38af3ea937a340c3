/*
 * Fault: what the instance sees, through the whole chain (proxy CLI -> agent CLI -> upstream), when
 * what is behind the agent fails: Nova unreachable -> 503, Nova slow -> 504 after the agent's timeout,
 * Nova answering garbage -> 502, Neutron (or Keystone) down or hanging -> 503. Each with its stable code
 * in the agent's log, each process still running, and service back once the upstream is.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createFakeOpenStack,
  FAKE_DEFAULTS,
  type FakePort,
  fakeNeutronResolverArgs,
} from '@nmp/openstack-fakes';
import { startAgentCli, startNovaCli, startProxyCli } from '@nmp/testkit';
import { request } from 'undici';
import { freePort, SAMPLE_INVENTORY, SAMPLE_NETWORK, startChain, tempDir } from './fault-harness.js';

type Mode = 'hang' | 'garbage' | 'close';

/** A TCP server on Nova's port that misbehaves as told. */
interface BadNova {
  mode: Mode;
  stop(): Promise<void>;
}

async function badNova(t: TestContext, port: number): Promise<BadNova> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', () => {
      if (state.mode === 'garbage') s.end('this is not HTTP at all\r\n\r\n');
      else if (state.mode === 'close') s.destroy();
      // hang: never answer
    });
  });
  const state: BadNova = {
    mode: 'hang',
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.after(() => state.stop());
  return state;
}

async function get(url: string): Promise<{ status: number; body: string; ms: number }> {
  const started = Date.now();
  const res = await request(`${url}/latest/meta-data/instance-id`, {
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  return { status: res.statusCode, body: await res.body.text(), ms: Date.now() - started };
}

test('Nova unreachable -> 503, slow -> 504, garbage -> 502, through the chain', async (t) => {
  const novaPort = await freePort();
  const chain = await startChain(t, { novaPort });

  const unreachable = await get(chain.proxyUrl);
  assert.equal(unreachable.status, 503);
  assert.equal(
    unreachable.body,
    'The remote metadata server is temporarily unavailable. Please try again later.\n',
  );
  assert.ok(unreachable.ms < 1000, `503 took ${unreachable.ms} ms`);

  const nova = await badNova(t, novaPort);
  nova.mode = 'hang';
  const slow = await get(chain.proxyUrl);
  assert.equal(slow.status, 504);
  assert.equal(slow.body, 'The remote metadata server did not respond in time.\n');
  assert.ok(slow.ms >= 900 && slow.ms < 2000, `504 after ${slow.ms} ms (agent timeout 1 s)`);

  nova.mode = 'garbage';
  const garbage = await get(chain.proxyUrl);
  assert.equal(garbage.status, 502);
  assert.equal(garbage.body, 'The remote metadata server returned an invalid response.\n');

  nova.mode = 'close';
  const closed = await get(chain.proxyUrl);
  assert.ok(closed.status === 502 || closed.status === 503, `closed without answer: ${closed.status}`);

  // Log lines are written in batches (at most 100 ms late): wait for each code rather than peek.
  for (const code of ['MDA_ERR_NOVA_UNREACHABLE', 'MDA_ERR_NOVA_TIMEOUT', 'MDA_ERR_NOVA_BAD_RESPONSE']) {
    await chain.agent.waitFor(new RegExp(`"code":"${code}"`), 2000);
  }
  assert.equal(chain.agent.child.exitCode, null);
  assert.equal(chain.proxy.child.exitCode, null);

  // Nova back: served again.
  await nova.stop();
  await chain.startNova();
  const ok = await get(chain.proxyUrl);
  assert.equal(ok.status, 200);
  assert.equal(ok.body, 'i-00000001');
});

test('Neutron down or hanging -> 503 through the chain; served again when it is back', async (t) => {
  const dir = tempDir(t);
  const { ports } = JSON.parse(readFileSync(SAMPLE_INVENTORY, 'utf8')) as { ports: FakePort[] };
  const openstack = createFakeOpenStack({ ports });
  await openstack.listen();
  t.after(() => openstack.close());

  const socketPath = `${dir}/agent.sock`;
  const sharedSecret = 'neutron-fault-secret';
  const nova = await startNovaCli({ t, sharedSecret });
  const agent = await startAgentCli({
    t,
    socketPath,
    novaPort: nova.port,
    sharedSecret,
    resolverArgs: [
      ...fakeNeutronResolverArgs(openstack.authUrl),
      '--neutron-timeout',
      '1',
      '--port-cache-ttl',
      '0',
      '--negative-cache-ttl',
      '0',
    ],
    env: { NMP_NEUTRON__PASSWORD: FAKE_DEFAULTS.password },
  });
  const proxy = await startProxyCli({ t, socketPath, identity: ['--network-id', SAMPLE_NETWORK] });
  const url = proxy.url;

  const up = await get(url);
  assert.equal(up.status, 200, up.body);
  assert.equal(up.body, 'i-00000001');

  const unavailable = 'The instance lookup service is temporarily unavailable. Please try again later.\n';
  await openstack.close();
  const down = await get(url);
  assert.equal(down.status, 503);
  assert.equal(down.body, unavailable);
  assert.ok(down.ms < 1500, `503 took ${down.ms} ms`);

  await openstack.listen();
  openstack.setFailure('hang', 'neutron');
  // Neutron was known unreachable: this lookup is the outage's probe. Its caller gets 503 after the short
  // grace (lookup_outage_grace) while the probe goes on to the deadline and finds a connected server.
  const probe = await get(url);
  assert.equal(probe.status, 503);
  assert.equal(probe.body, unavailable);
  assert.ok(probe.ms < 2500, `503 after ${probe.ms} ms`);
  await sleep(Math.max(0, 1200 - probe.ms));
  // A connected but silent server: the whole [neutron] timeout, not the fail-fast short cut.
  const hanging = await get(url);
  assert.equal(hanging.status, 503);
  assert.equal(hanging.body, unavailable);
  assert.ok(hanging.ms >= 900 && hanging.ms < 2500, `503 after ${hanging.ms} ms (neutron timeout 1 s)`);

  openstack.setFailure(500, 'neutron');
  assert.equal((await get(url)).status, 503);

  openstack.setFailure(null, 'neutron');
  const back = await get(url);
  assert.equal(back.status, 200);
  await agent.waitFor(/"code":"MDA_ERR_RESOLVER_UNAVAILABLE"/, 2000);
  assert.equal(agent.child.exitCode, null);
  assert.equal(proxy.child.exitCode, null);
});
