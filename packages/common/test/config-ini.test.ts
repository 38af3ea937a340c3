/*
 * The INI reader against oslo.config's parser (oslo_config/iniparser.py): what a line means there is what
 * it must mean here, quirks included, because operators' files were written for oslo.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IniSyntaxError, parseIni } from '../src/config/ini.js';

const values = (text: string) => parseIni(text, 'f.ini').map((e) => [e.section, e.key, e.value, e.line]);

test('sections, `key = value`, `key=value`, `key: value`, and the first of = or : splits', () => {
  assert.deepEqual(
    values('[DEFAULT]\na = 1\nb=2\nc: 3\nd = x:y=z\ne: http://h:1/p?q=1\n[AGENT]\nf =  spaced  \n'),
    [
      ['DEFAULT', 'a', '1', 2],
      ['DEFAULT', 'b', '2', 3],
      ['DEFAULT', 'c', '3', 4],
      ['DEFAULT', 'd', 'x:y=z', 5],
      ['DEFAULT', 'e', 'http://h:1/p?q=1', 6],
      ['AGENT', 'f', 'spaced', 8],
    ],
  );
});

test('# and ; start a comment only at the start of a line; inside a value they are kept', () => {
  assert.deepEqual(
    values('# top\n; also\n[DEFAULT]\n#a = 1\npassword = abc#123;x\ndebug = true  # trailing\n'),
    [
      ['DEFAULT', 'password', 'abc#123;x', 5],
      ['DEFAULT', 'debug', 'true  # trailing', 6],
    ],
  );
});

test('indented lines continue a value (even one that looks like a comment); a blank line ends it', () => {
  const text = [
    '[DEFAULT]',
    'levels = amqp=WARN,',
    '    oslo.messaging=INFO,',
    '\t# not a comment here',
    '',
    '    # after a blank line: an indented comment, ignored',
    'next = 1',
    'empty_first =',
    '  a',
    '  b',
  ].join('\n');
  assert.deepEqual(values(text), [
    ['DEFAULT', 'levels', 'amqp=WARN,\noslo.messaging=INFO,\n# not a comment here', 2],
    ['DEFAULT', 'next', '1', 7],
    ['DEFAULT', 'empty_first', 'a\nb', 8],
  ]);
});

test('one pair of matching quotes is removed from a first-line value, as oslo does', () => {
  assert.deepEqual(values(`[DEFAULT]\na = "x y "\nb = 'z'\nc = "unbalanced\nd = "a" "b"\ne = ''\n`), [
    ['DEFAULT', 'a', 'x y ', 2],
    ['DEFAULT', 'b', 'z', 3],
    ['DEFAULT', 'c', '"unbalanced', 4],
    ['DEFAULT', 'd', 'a" "b', 5],
    ['DEFAULT', 'e', '', 6],
  ]);
});

test('CRLF line ends, a byte-order mark, trailing spaces and repeated keys (all returned, in order)', () => {
  assert.deepEqual(values('\ufeff[DEFAULT]\r\na = 1 \r\na = 2\r\n'), [
    ['DEFAULT', 'a', '1', 2],
    ['DEFAULT', 'a', '2', 3],
  ]);
});

test('errors name the file and line', () => {
  const cases: Array<[string, RegExp]> = [
    ['a = 1\n', /^f\.ini:1: option before the first \[section\]$/],
    ['[DEFAULT]\njust words\n', /^f\.ini:2: expected 'option = value', got "just words"$/],
    ['[DEFAULT\n', /^f\.ini:1: section header without a closing \]/],
    ['[]\n', /^f\.ini:1: empty section name$/],
    ['[DEFAULT]\n = 1\n', /^f\.ini:2: indented line without an option to continue$/],
    ['[DEFAULT]\n= 1\n', /^f\.ini:2: option name missing before '='$/],
  ];
  for (const [text, want] of cases) {
    assert.throws(
      () => parseIni(text, 'f.ini'),
      (err: unknown) => err instanceof IniSyntaxError && want.test(err.message),
      text,
    );
  }
});
