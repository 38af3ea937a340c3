/*
 * The lag gate (@nmp/common lag-gate.ts; its own tests live here, since @nmp/common's tests cannot use the
 * testkit) on a hand-driven clock and timer, and what the proxy does with its answer: a process that keeps
 * up forwards a request within the 'request' event that parsed it; one that is behind (or does not know
 * yet) holds it for a poll phase first, as the client-gone check needs. Ordering only: which listener saw
 * the agent asked, never how long anything took.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { test } from 'node:test';
import { LAG_LIMIT_MS, LAG_PERIOD_MS, type LagGate, parseBind } from '@nmp/common';
import { behindGate, handDrivenLagGate, keepingUpGate } from '@nmp/testkit';
import { MetadataProxy } from '../src/proxy.js';
import { captureLogs, startFakeAgent } from './helpers.js';

test('unknown until the first tick, then behind only while the ticks run late', () => {
  const { gate, clock: c, after } = handDrivenLagGate();
  assert.equal(gate.sampling, false);
  assert.equal(gate.behind(), true, 'no tick yet: not known to keep up');
  assert.equal(gate.sampling, true);
  after(LAG_PERIOD_MS);
  assert.equal(gate.behind(), false, 'on time');
  after(LAG_PERIOD_MS + LAG_LIMIT_MS);
  assert.equal(gate.behind(), false, 'late by the limit exactly: still keeping up');
  after(LAG_PERIOD_MS + LAG_LIMIT_MS + 1);
  assert.equal(gate.behind(), true, 'later than the limit');
  assert.equal(gate.behind(), true, 'until the next tick');
  after(LAG_PERIOD_MS + 2);
  assert.equal(gate.behind(), false, 'on time again');
  assert.equal(c.starts, 1, 'one timer all along');
});

test('a period in which the loop never waited for I/O (a backlog) says behind, on time or not', () => {
  const { gate, after } = handDrivenLagGate();
  gate.behind();
  after(LAG_PERIOD_MS, false); // the first period: busy reading what piled up
  assert.equal(gate.behind(), true);
  after(LAG_PERIOD_MS, false);
  assert.equal(gate.behind(), true);
  after(LAG_PERIOD_MS); // caught up: it waited for I/O once
  assert.equal(gate.behind(), false);
  after(LAG_PERIOD_MS, false);
  assert.equal(gate.behind(), true);
});

test('a blocked loop counts from the start of sampling: the first tick after a block says behind', () => {
  const { gate, after } = handDrivenLagGate();
  gate.behind();
  after(500); // blocked right after the sampling started
  assert.equal(gate.behind(), true);
});

test('a period without a request stops the timer; the next request starts it, not known to keep up', () => {
  const { gate, clock: c, after } = handDrivenLagGate();
  gate.behind();
  after(LAG_PERIOD_MS);
  assert.equal(gate.behind(), false);
  after(LAG_PERIOD_MS); // asked during this period: keeps sampling
  assert.equal(gate.sampling, true);
  after(LAG_PERIOD_MS); // nobody asked: stops
  assert.equal(gate.sampling, false);
  assert.equal(c.tick, undefined);
  assert.equal(gate.behind(), true);
  assert.equal(c.starts, 2);
  after(LAG_PERIOD_MS);
  assert.equal(gate.behind(), false);
});

test("the default gate's timer does not keep a process alive", () => {
  const url = import.meta.resolve('@nmp/common');
  const script = `const { processLag } = await import(${JSON.stringify(url)});
    const before = process.getActiveResourcesInfo().length;
    processLag.behind();
    console.log(processLag.sampling, process.getActiveResourcesInfo().length - before);`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    timeout: 10_000,
    encoding: 'utf8',
  });
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), 'true 0', 'sampling, with no resource holding the process');
});

/** A proxy with `gate`; `sentAtRequest[i]`: how many agent requests were sent when request i's event ended. */
async function proxyWith(t: import('node:test').TestContext, gate: LagGate) {
  const agent = await startFakeAgent(t);
  const logs = captureLogs('ns-metadata-proxy');
  const proxy = new MetadataProxy({
    identity: { mode: 'network', id: 'net-1' },
    binds: [parseBind('127.0.0.1:0')],
    socketPath: agent.socketPath,
    logger: logs.logger,
    lag: gate,
  });
  const [address] = await proxy.listen();
  t.after(() => proxy.close(100));
  let sent = 0;
  const send = proxy.agent.send.bind(proxy.agent);
  proxy.agent.send = (...args: Parameters<typeof send>) => {
    sent++;
    return send(...args);
  };
  const sentAtRequest: number[] = [];
  // Runs right after the handler, within the same 'request' event.
  proxy.servers[0]!.on('request', () => sentAtRequest.push(sent));
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: address!.port, path: '/latest/meta-data/' }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  return { agent, get, sentAtRequest };
}

test('a proxy that keeps up forwards within the request event: no poll phase waited', async (t) => {
  const { agent, get, sentAtRequest } = await proxyWith(t, keepingUpGate());
  for (let i = 0; i < 3; i++) assert.equal(await get(), 200);
  assert.deepEqual(sentAtRequest, [1, 2, 3]);
  assert.equal(agent.seen.length, 3);
});

test('a proxy that is behind forwards after the request event (it looks for a close first)', async (t) => {
  const { agent, get, sentAtRequest } = await proxyWith(t, behindGate());
  for (let i = 0; i < 3; i++) assert.equal(await get(), 200);
  assert.deepEqual(sentAtRequest, [0, 1, 2]);
  assert.equal(agent.seen.length, 3);
});
