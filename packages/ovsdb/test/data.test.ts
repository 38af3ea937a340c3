/*
 * Values, remotes and conditions without a server: decoding against column types (and refusing what does
 * not fit), update2 diffs as ovsdb-server computes them, encoding for transact, remote syntax as OVS writes
 * it, and the local evaluation of monitor conditions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileWhere } from '../src/conditions.js';
import { applyDiff, decodeDatum, defaultDatum, encodeDatum, mapOf, type Row } from '../src/data.js';
import { OvsdbError, RemoteSyntaxError } from '../src/errors.js';
import { parseRemote, parseRemotes } from '../src/remote.js';
import { type ColumnType, parseColumnType, parseSchema } from '../src/schema.js';

const U1 = '6b6e1ec1-7c44-4d0e-8b0f-3b1c1e7d0001';
const U2 = '6b6e1ec1-7c44-4d0e-8b0f-3b1c1e7d0002';

const scalarString = parseColumnType('string', 't');
const optionalUuid = parseColumnType(
  { key: { type: 'uuid', refTable: 'Chassis', refType: 'weak' }, min: 0, max: 1 },
  't',
);
const stringSet = parseColumnType({ key: 'string', min: 0, max: 'unlimited' }, 't');
const stringMap = parseColumnType({ key: 'string', value: 'string', min: 0, max: 'unlimited' }, 't');
const intScalar = parseColumnType('integer', 't');

test('decoding follows the column type', () => {
  assert.equal(decodeDatum(scalarString, 'x'), 'x');
  assert.equal(decodeDatum(intScalar, 42), 42);
  assert.deepEqual(decodeDatum(optionalUuid, ['set', []]), []);
  assert.deepEqual(decodeDatum(optionalUuid, ['uuid', U1.toUpperCase()]), [U1]);
  assert.deepEqual(decodeDatum(stringSet, 'a'), ['a'], 'a one-element set may be sent bare');
  assert.deepEqual(decodeDatum(stringSet, ['set', ['a', 'b']]), ['a', 'b']);
  assert.deepEqual(
    decodeDatum(stringMap, [
      'map',
      [
        ['k', 'v'],
        ['__proto__', 'p'],
      ],
    ]),
    new Map([
      ['k', 'v'],
      ['__proto__', 'p'],
    ]),
  );
});

test('values that do not fit the type are refused with OVSDB_ERR_DATA', () => {
  const bad: [ColumnType, unknown][] = [
    [scalarString, 5],
    [intScalar, 1.5],
    [intScalar, '1'],
    [optionalUuid, ['uuid', 'not-a-uuid']],
    [optionalUuid, ['named-uuid', 'x']],
    [stringSet, ['set', 'a']],
    [stringMap, { k: 'v' }],
    [stringMap, ['map', [['k']]]],
    [stringMap, ['map', [['k', 1]]]],
    [scalarString, ['set', []]],
    [scalarString, ['set', ['a', 'b']]],
  ];
  for (const [type, json] of bad) {
    assert.throws(
      () => decodeDatum(type, json),
      (e: unknown) => e instanceof OvsdbError && e.code === 'OVSDB_ERR_DATA',
      JSON.stringify(json),
    );
  }
});

test('defaults: empty sets and maps, zero atoms', () => {
  assert.equal(defaultDatum(scalarString), '');
  assert.equal(defaultDatum(intScalar), 0);
  assert.deepEqual(defaultDatum(optionalUuid), []);
  assert.deepEqual(defaultDatum(stringMap), new Map());
});

test('update2 diffs: replace for at most one element, toggle for sets, the map rules', () => {
  // An optional column: the diff is the new value, including "now empty".
  assert.deepEqual(applyDiff(optionalUuid, [U1], ['uuid', U2]), [U2]);
  assert.deepEqual(applyDiff(optionalUuid, [U1], ['set', []]), []);
  assert.deepEqual(applyDiff(optionalUuid, [], ['uuid', U1]), [U1]);
  assert.equal(applyDiff(scalarString, 'old', 'new'), 'new');
  // A set: listed elements flip membership.
  assert.deepEqual(applyDiff(stringSet, ['a', 'b'], ['set', ['b', 'c']]), ['a', 'c']);
  // A map: a listed pair equal to ours is deleted; otherwise the key takes the listed value.
  const map = new Map([
    ['keep', '1'],
    ['del', '2'],
    ['chg', '3'],
  ]);
  assert.deepEqual(
    applyDiff(stringMap, map, [
      'map',
      [
        ['del', '2'],
        ['chg', '30'],
        ['new', '4'],
      ],
    ]),
    new Map([
      ['keep', '1'],
      ['chg', '30'],
      ['new', '4'],
    ]),
  );
  assert.equal(map.get('del'), '2', 'the current value is not mutated');
});

test('encodeDatum is the inverse of decodeDatum', () => {
  const cases: [ColumnType, unknown][] = [
    [scalarString, 'x'],
    [optionalUuid, ['set', [['uuid', U1]]]],
    [stringSet, ['set', ['a', 'b']]],
    [stringMap, ['map', [['k', 'v']]]],
  ];
  for (const [type, wire] of cases) assert.deepEqual(encodeDatum(type, decodeDatum(type, wire)), wire);
  assert.deepEqual(mapOf({ a: '1' }), ['map', [['a', '1']]]);
  assert.deepEqual(mapOf(new Map([['b', '2']])), ['map', [['b', '2']]]);
});

test('remotes as OVS and neutron write them', () => {
  assert.deepEqual(parseRemote('tcp:10.0.0.1:6642'), {
    kind: 'tcp',
    host: '10.0.0.1',
    port: 6642,
    text: 'tcp:10.0.0.1:6642',
  });
  assert.deepEqual(parseRemote('ssl:[fd00::1]:6642'), {
    kind: 'ssl',
    host: 'fd00::1',
    port: 6642,
    text: 'ssl:[fd00::1]:6642',
  });
  assert.deepEqual(parseRemote('tcp:ovn-sb.example'), {
    kind: 'tcp',
    host: 'ovn-sb.example',
    port: 6640,
    text: 'tcp:ovn-sb.example',
  });
  assert.deepEqual(parseRemote('unix:/var/run/ovn/ovnsb_db.sock'), {
    kind: 'unix',
    path: '/var/run/ovn/ovnsb_db.sock',
    text: 'unix:/var/run/ovn/ovnsb_db.sock',
  });
  assert.deepEqual(
    parseRemotes(' tcp:10.0.0.1:6642, tcp:10.0.0.2:6642 ,tcp:10.0.0.3:6642').map((r) => r.text),
    ['tcp:10.0.0.1:6642', 'tcp:10.0.0.2:6642', 'tcp:10.0.0.3:6642'],
  );
  for (const bad of [
    '',
    'tcp',
    'http:1.2.3.4:80',
    'ptcp:6642',
    'punix:/x',
    'tcp:fd00::1:6642',
    'tcp:[fd00::1',
    'tcp:[1.2.3.4]:1',
    'tcp:1.2.3.4:0',
    'tcp:1.2.3.4:70000',
    'tcp:a b:1',
    'unix:',
  ]) {
    assert.throws(() => parseRemotes(bad), RemoteSyntaxError, bad);
  }
});

const schema = parseSchema({
  name: 'T',
  version: '1.0.0',
  tables: {
    PB: {
      columns: {
        logical_port: { type: 'string' },
        chassis: { type: { key: { type: 'uuid' }, min: 0, max: 1 } },
        tag: { type: { key: 'integer', min: 0, max: 1 } },
        external_ids: { type: { key: 'string', value: 'string', min: 0, max: 'unlimited' } },
      },
    },
  },
});

test('conditions evaluated locally as ovsdb-server does', () => {
  const pb = schema.tables.get('PB')!;
  const row = (o: Partial<Row>): Row =>
    ({ _uuid: U1, logical_port: '', chassis: [], tag: [], external_ids: new Map(), ...o }) as Row;
  const mine = compileWhere(pb, [
    ['chassis', '==', ['uuid', U1]],
    ['logical_port', '==', 'lp'],
  ]);
  assert.equal(mine(row({ chassis: [U1] })), true);
  assert.equal(mine(row({ chassis: [U2] })), false);
  assert.equal(mine(row({ logical_port: 'lp' })), true, 'conditions are ORed');
  assert.equal(compileWhere(pb, [['chassis', '==', ['set', []]]])(row({})), true);
  const inc = compileWhere(pb, [
    ['external_ids', 'includes', ['map', [['neutron:device_owner', 'network:distributed']]]],
  ]);
  assert.equal(
    inc(
      row({
        external_ids: new Map([
          ['neutron:device_owner', 'network:distributed'],
          ['x', 'y'],
        ]),
      }),
    ),
    true,
  );
  assert.equal(inc(row({ external_ids: new Map([['neutron:device_owner', 'compute:nova']]) })), false);
  const exc = compileWhere(pb, [['chassis', 'excludes', ['uuid', U1]]]);
  assert.equal(exc(row({ chassis: [U2] })), true);
  assert.equal(exc(row({ chassis: [U1] })), false);
  assert.equal(compileWhere(pb, [['tag', '>', 5]])(row({ tag: [7] })), true);
  assert.equal(compileWhere(pb, [['tag', '>', 5]])(row({ tag: [] })), false, 'empty optional: false');
  assert.equal(compileWhere(pb, [false])(row({})), false);
  assert.equal(compileWhere(pb, [])(row({})), true);
  assert.throws(() => compileWhere(pb, [['nope', '==', 1]]), OvsdbError);
});

test('the schema adds _uuid and _version and refuses nonsense', () => {
  const t = schema.tables.get('PB')!;
  assert.ok(t.columns.has('_uuid') && t.columns.has('_version'));
  assert.equal(t.columns.get('external_ids')!.type.max, Number.POSITIVE_INFINITY);
  for (const bad of [
    null,
    { name: 'x' },
    { name: 'x', tables: { T: { columns: { c: { type: 'float' } } } } },
    { name: 'x', tables: { T: { columns: { c: { type: { key: 'string', min: 2 } } } } } },
  ]) {
    assert.throws(() => parseSchema(bad), OvsdbError);
  }
});
