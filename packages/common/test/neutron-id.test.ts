/* The one shape of a network or router id (used by the agent, the proxy, the daemon, the hooks). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNeutronId } from '../src/neutron-id.js';

test('UUIDs and short names are ids; separators, escapes and option-like or overlong text are not', () => {
  for (const id of ['9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11', 'net-1', 'n', 'a.b_c-d', 'X'.repeat(128)])
    assert.equal(isNeutronId(id), true, id);
  for (const id of [
    '',
    '-net',
    '.hidden',
    '../../x',
    'a/b',
    'a, b',
    'a b',
    'a:b',
    'a%b',
    'a\nb',
    'é',
    'X'.repeat(129),
  ])
    assert.equal(isNeutronId(id), false, JSON.stringify(id));
});
