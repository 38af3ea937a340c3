/*
 * The stream framer: messages cut at the end of each top-level object whatever the chunking, strings with
 * braces, quotes and escapes inside, multi-byte UTF-8 split across chunks, and refusal of what a broken or
 * hostile server might send (garbage, too large, too deep, invalid JSON).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FramingError } from '../src/errors.js';
import { JsonObjectFramer } from '../src/json-stream.js';

const framer = (max = 1 << 20) => new JsonObjectFramer({ maxMessageBytes: max });

function feedAll(f: JsonObjectFramer, text: string, chunkSize: number): unknown[] {
  const bytes = Buffer.from(text, 'utf8');
  const out: unknown[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) out.push(...f.push(bytes.subarray(i, i + chunkSize)));
  return out;
}

const MESSAGES = [
  { id: 1, method: 'echo', params: [] },
  {
    method: 'update2',
    params: ['m1', { T: { 'a-b': { modify: { s: 'tricky } ] { [ " \\ chars' } } } }],
    id: null,
  },
  {
    id: 2,
    result: { text: 'ünïcödé 🚀 and \u2028 line separators', n: -1.5e3, b: true, z: null },
    error: null,
  },
  {
    id: 3,
    result: [
      ['set', []],
      ['map', [['k', 'v']]],
    ],
    error: null,
  },
];

test('back-to-back messages, every chunk size from 1 byte up', () => {
  const text = MESSAGES.map((m) => JSON.stringify(m)).join('') + '\n' + JSON.stringify(MESSAGES[0]);
  const expected = [...MESSAGES, MESSAGES[0]];
  for (const size of [1, 2, 3, 5, 7, 13, 64, 1000, 1 << 16]) {
    assert.deepEqual(feedAll(framer(), text, size), expected, `chunk size ${size}`);
  }
});

test('whitespace between messages is allowed, a message never needs a newline', () => {
  const f = framer();
  assert.deepEqual(f.push(Buffer.from(' \r\n\t{"a":1}  {"b":2}{"c":')), [{ a: 1 }, { b: 2 }]);
  assert.equal(f.buffered, 5);
  assert.deepEqual(f.push(Buffer.from('3}')), [{ c: 3 }]);
  assert.equal(f.buffered, 0);
});

test('an escaped quote and an escaped backslash at a chunk boundary', () => {
  const text = JSON.stringify({ s: 'a\\"}b\\\\', t: '"\\' });
  for (let cut = 1; cut < text.length; cut++) {
    const f = framer();
    const out = [...f.push(Buffer.from(text.slice(0, cut))), ...f.push(Buffer.from(text.slice(cut)))];
    assert.deepEqual(out, [{ s: 'a\\"}b\\\\', t: '"\\' }], `cut at ${cut}`);
  }
});

test('garbage between messages is a framing error, and the framer stays failed', () => {
  const f = framer();
  assert.deepEqual(f.push(Buffer.from('{"a":1}')), [{ a: 1 }]);
  assert.throws(
    () => f.push(Buffer.from('HTTP/1.1 400 Bad Request\r\n')),
    (e: unknown) => e instanceof FramingError && e.code === 'OVSDB_ERR_FRAMING',
  );
  assert.throws(() => f.push(Buffer.from('{"a":1}')), FramingError);
});

test('a top-level array or scalar is refused (JSON-RPC messages are objects)', () => {
  for (const text of ['[1,2]', '42', '"x"', 'null']) {
    assert.throws(() => framer().push(Buffer.from(text)), FramingError, text);
  }
});

test('invalid JSON inside balanced braces is a framing error, not an exception of another kind', () => {
  for (const text of ['{"a":}', '{a:1}', "{'a':1}", '{"a":[1,}}', '{"a":1]']) {
    assert.throws(
      () => framer().push(Buffer.from(text)),
      (e: unknown) => e instanceof FramingError && e.code === 'OVSDB_ERR_FRAMING',
      text,
    );
  }
});

test('a message over the limit is refused while it arrives, without buffering it whole', () => {
  const f = framer(1000);
  assert.deepEqual(f.push(Buffer.from(`{"ok":"${'x'.repeat(900)}"}`)), [{ ok: 'x'.repeat(900) }]);
  f.push(Buffer.from('{"big":"'));
  assert.throws(
    () => {
      for (let i = 0; i < 100; i++) f.push(Buffer.alloc(100, 0x61));
    },
    (e: unknown) => e instanceof FramingError && e.code === 'OVSDB_ERR_MESSAGE_TOO_LARGE',
  );
  assert.equal(f.buffered, 0, 'the partial message is released');
});

test('an endless string or an unclosed object is bounded too', () => {
  const f = framer(4096);
  assert.throws(() => {
    f.push(Buffer.from('{"s":"'));
    for (let i = 0; i < 10; i++) f.push(Buffer.alloc(1024, 0x7b)); // '{' inside a string: no nesting
  }, FramingError);
});

test('nesting deeper than the bound is refused before JSON.parse sees it', () => {
  const f = new JsonObjectFramer({ maxMessageBytes: 1 << 20, maxDepth: 16 });
  assert.throws(
    () => f.push(Buffer.from(`{"a":${'['.repeat(100)}`)),
    (e: unknown) => e instanceof FramingError && /nested deeper/.test(e.message),
  );
  // Braces inside strings do not count.
  assert.deepEqual(
    new JsonObjectFramer({ maxMessageBytes: 1 << 20, maxDepth: 3 }).push(
      Buffer.from(`{"a":"${'['.repeat(100)}"}`),
    ),
    [{ a: '['.repeat(100) }],
  );
});

test('a large message in many chunks (a Southbound snapshot) comes out whole and equal', () => {
  const rows: Record<string, unknown> = {};
  for (let i = 0; i < 5000; i++) {
    rows[`00000000-0000-4000-8000-${String(i).padStart(12, '0')}`] = {
      initial: {
        logical_port: `port-${i}`,
        mac: ['set', [`fa:16:3e:00:00:00 10.0.${i >> 8}.${i & 255}`]],
        external_ids: ['map', [['neutron:device_id', `dev-"${i}"`]]],
      },
    };
  }
  const message = { id: 7, result: { Port_Binding: rows }, error: null };
  const out = feedAll(framer(64 << 20), JSON.stringify(message), 65536);
  assert.deepEqual(out, [message]);
});
