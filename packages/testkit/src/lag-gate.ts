/*
 * A LagGate (@nmp/common) on a clock and a timer the test drives: `after(ms)` moves the clock and fires
 * the sampling tick as the event loop would, that late. For the gate's own tests and for the handlers'
 * ordering tests (a process that keeps up goes on within the request event; one that is behind waits a
 * poll phase first).
 */
import assert from 'node:assert/strict';
import { LAG_PERIOD_MS, LagGate } from '@nmp/common';

export interface HandDrivenLagGate {
  readonly gate: LagGate;
  /** The clock (ms), libuv's idle time so far, the tick while sampling, and how often sampling started. */
  readonly clock: { ms: number; idle: number; tick: (() => void) | undefined; starts: number };
  /** Move the clock by `ms` and fire the tick; `waited`: whether the loop waited for I/O meanwhile. */
  after(ms: number, waited?: boolean): void;
}

export function handDrivenLagGate(): HandDrivenLagGate {
  const clock = { ms: 1_000, idle: 500, tick: undefined as (() => void) | undefined, starts: 0 };
  const gate = new LagGate({
    now: () => clock.ms,
    idle: () => clock.idle,
    every: (tick, ms) => {
      assert.equal(ms, LAG_PERIOD_MS, 'the gate samples every LAG_PERIOD_MS');
      clock.starts++;
      clock.tick = tick;
      return () => {
        clock.tick = undefined;
      };
    },
  });
  const after = (ms: number, waited = true): void => {
    clock.ms += ms;
    if (waited) clock.idle += 0.01;
    assert.ok(clock.tick, 'the gate is not sampling: nothing would tick');
    clock.tick();
  };
  return { gate, clock, after };
}

/** A hand-driven gate that has seen one tick on time: the process keeps up. */
export function keepingUpGate(): LagGate {
  const g = handDrivenLagGate();
  g.gate.behind();
  g.after(LAG_PERIOD_MS);
  assert.equal(g.gate.behind(), false);
  return g.gate;
}

/** A hand-driven gate whose last period never waited for I/O: the process is behind. */
export function behindGate(): LagGate {
  const g = handDrivenLagGate();
  g.gate.behind();
  g.after(LAG_PERIOD_MS, false);
  assert.equal(g.gate.behind(), true);
  return g.gate;
}
