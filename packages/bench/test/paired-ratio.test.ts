/* The benchmarks' A/B ratio: same-round ratios paired by order, so that a second-runner advantage cancels. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, pairedRatio } from '../src/lib.js';

test('an order effect cancels within each pair of rounds; the plain median of an odd count leans with it', () => {
  // Two equal sides; whichever runs second in a round looks 20% better (A first in odd rounds).
  const rounds = [1.2, 1 / 1.2, 1.2, 1 / 1.2, 1.2];
  assert.equal(median(rounds), 1.2);
  assert.ok(Math.abs(pairedRatio(rounds) - 1) < 1e-12, String(pairedRatio(rounds)));
});

test('a real difference survives the pairing', () => {
  const rounds = [1.1 * 1.2, 1.1 / 1.2, 1.1 * 1.2, 1.1 / 1.2];
  assert.ok(Math.abs(pairedRatio(rounds) - 1.1) < 1e-12, String(pairedRatio(rounds)));
});

test('the median over pairs, the last odd round left out, one round its own ratio, none NaN', () => {
  // Pairs: sqrt(1*4)=2, sqrt(1*1)=1, sqrt(9*1)=3 -> median 2; the 7th round (100) is left out.
  assert.equal(pairedRatio([1, 4, 1, 1, 9, 1, 100]), 2);
  assert.equal(pairedRatio([0.9]), 0.9);
  assert.ok(Number.isNaN(pairedRatio([])));
});
