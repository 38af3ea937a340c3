/* Nova's JSON bytes: Python json.dumps defaults (vector produced with CPython 3). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pythonJsonDumps } from '../src/python-json.js';

test('pythonJsonDumps writes what json.dumps writes', () => {
  const value = { a: 'é\u007f\u0001\n"\\/', b: [1, 2.5, true, null, {}], c: '😀', d: [] };
  assert.equal(
    pythonJsonDumps(value),
    '{"a": "\\u00e9\\u007f\\u0001\\n\\"\\\\/", "b": [1, 2.5, true, null, {}], "c": "\\ud83d\\ude00", "d": []}',
  );
});

test('pythonJsonDumps output parses back to the same value', () => {
  const value = { tab: '\t', nested: { list: ['x', { y: 'z\u2028' }] }, n: -3 };
  assert.deepEqual(JSON.parse(pythonJsonDumps(value)), value);
});
