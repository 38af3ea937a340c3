/*
 * Fault: the metadata agent is killed with SIGKILL while 50 keep-alive connections load the proxy, and
 * restarted. Every request gets an answer (200, or a 5xx from the proxy; never a hang or a dropped
 * connection), the proxy keeps running and says why in its log, and service is back within 1 s of the
 * restarted agent listening.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep, startChain, startLoad, tally } from './fault-harness.js';

test('kill -9 the agent under load, restart it: every request answered, service back within 1 s', async (t) => {
  const chain = await startChain(t);
  const load = startLoad(chain.proxyUrl, { connections: 50, timeoutMs: 3000, maxMs: 30_000 });
  try {
    await load.successes(200, 20_000);
    const killedAt = Date.now() - load.started;
    chain.agent.child.kill('SIGKILL');
    await chain.agent.exited;
    const goneAt = Date.now() - load.started;
    await sleep(1000);
    const restartAt = Date.now() - load.started;
    const restarted = await chain.startAgent();
    const readyAt = restarted.readyAt! - load.started;
    await sleep(2000);
    await load.stop();

    const all = load.outcomes;
    const counts = tally(all);
    t.diagnostic(
      `outcomes: ${JSON.stringify(counts)}; killed at ${killedAt} ms, restarted at ${restartAt} ms, ready at ${readyAt} ms`,
    );
    const unanswered = all.filter((o) => typeof o.result !== 'number');
    assert.deepEqual(unanswered.slice(0, 5), [], `requests without an answer: ${JSON.stringify(counts)}`);
    for (const o of all) {
      const s = o.result as number;
      assert.ok(s === 200 || (s >= 500 && s <= 504), `unexpected status ${s} at ${o.at} ms`);
    }
    // Steady state before the kill, the outage answered with 5xx, then success again.
    assert.ok(all.filter((o) => o.at < killedAt && o.result === 200).length > 50, 'too little load before');
    assert.equal(all.filter((o) => o.at < killedAt && o.result !== 200).length, 0);
    const during = all.filter((o) => o.sent > goneAt && o.sent < restartAt);
    assert.ok(during.length > 0, 'no request during the outage');
    assert.ok(
      during.every((o) => o.result === 503 || o.result === 502),
      `outage answers: ${JSON.stringify(tally(during))}`,
    );
    const firstOk = all.find((o) => o.at >= restartAt && o.result === 200);
    assert.ok(firstOk, 'no success after the restart');
    t.diagnostic(`first success ${firstOk.at - readyAt} ms after the restarted agent listened`);
    assert.ok(firstOk.at - readyAt <= 1000, `service resumed ${firstOk.at - readyAt} ms after the restart`);
    const late = all.filter((o) => o.at > readyAt + 1000);
    assert.ok(late.length > 50);
    assert.deepEqual(tally(late), { 200: late.length }, 'failures more than 1 s after the restart');

    // The proxy survived and logged the cause with a stable code.
    assert.equal(chain.proxy.child.exitCode, null);
    assert.ok(chain.proxy.codes.has('MDP_ERR_AGENT_UNREACHABLE'), `proxy codes: ${[...chain.proxy.codes]}`);
  } finally {
    await load.stop();
  }
});
