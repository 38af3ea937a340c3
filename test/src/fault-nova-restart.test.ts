/*
 * Fault: Nova's metadata API is killed while 50 keep-alive connections load the proxy, and started
 * again on the same port. Every request gets an answer (200, or the agent's 503/502; never a hang),
 * agent and proxy keep running, the agent logs the cause with a stable code, and service is back within
 * 1 s of Nova listening again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep, startChain, startLoad, tally } from './fault-harness.js';

test('Nova stopped and restarted under load: every request answered, service back within 1 s', async (t) => {
  const chain = await startChain(t);
  const load = startLoad(chain.proxyUrl, { connections: 50, timeoutMs: 3000, maxMs: 30_000 });
  try {
    await load.successes(200, 20_000);
    const stoppedAt = Date.now() - load.started;
    chain.nova!.child.kill('SIGKILL');
    await chain.nova!.exited;
    const goneAt = Date.now() - load.started;
    await sleep(1000);
    const restartAt = Date.now() - load.started;
    const restarted = await chain.startNova();
    const readyAt = restarted.readyAt! - load.started;
    await sleep(2000);
    await load.stop();

    const all = load.outcomes;
    const counts = tally(all);
    t.diagnostic(
      `outcomes: ${JSON.stringify(counts)}; stopped at ${stoppedAt} ms, restarted at ${restartAt} ms, ready at ${readyAt} ms`,
    );
    const unanswered = all.filter((o) => typeof o.result !== 'number');
    assert.deepEqual(unanswered.slice(0, 5), [], `requests without an answer: ${JSON.stringify(counts)}`);
    for (const o of all) {
      const s = o.result as number;
      assert.ok(s === 200 || (s >= 500 && s <= 504), `unexpected status ${s} at ${o.at} ms`);
    }
    assert.equal(all.filter((o) => o.at < stoppedAt && o.result !== 200).length, 0);
    const during = all.filter((o) => o.sent > goneAt && o.sent < restartAt);
    assert.ok(during.length > 0, 'no request during the outage');
    assert.ok(
      during.every((o) => o.result === 503 || o.result === 502),
      `outage answers: ${JSON.stringify(tally(during))}`,
    );
    const firstOk = all.find((o) => o.at >= restartAt && o.result === 200);
    assert.ok(firstOk, 'no success after the restart');
    t.diagnostic(`first success ${firstOk.at - readyAt} ms after Nova listened again`);
    assert.ok(firstOk.at - readyAt <= 1000, `service resumed ${firstOk.at - readyAt} ms after the restart`);
    const late = all.filter((o) => o.at > readyAt + 1000);
    assert.ok(late.length > 50);
    assert.deepEqual(tally(late), { 200: late.length }, 'failures more than 1 s after the restart');

    assert.equal(chain.agent.child.exitCode, null);
    assert.equal(chain.proxy.child.exitCode, null);
    assert.ok(chain.agent.codes.has('MDA_ERR_NOVA_UNREACHABLE'), `agent codes: ${[...chain.agent.codes]}`);
  } finally {
    await load.stop();
  }
});
