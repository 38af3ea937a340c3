import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { addDetails, createLogger, writeInfoLine } from '../src/logger.js';

function sink(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, stream };
}

test('writeInfoLine prints what logger.info would, bindings and order included', () => {
  const { lines, stream } = sink();
  const log = createLogger({ name: 'unit', level: 'info' }, stream).child({ network: 'net"1' });
  const fields = {
    rid: 'req-1',
    method: 'GET',
    path: '/a"b\u0001\\c',
    src: '10.0.0.5',
    status: 200,
    ms: 0.25,
  };
  log.info(fields, 'request');
  writeInfoLine(
    log,
    `"rid":"req-1","method":"GET","path":${JSON.stringify(fields.path)},"src":"10.0.0.5","status":200,"ms":0.25`,
    JSON.stringify('request'),
  );
  assert.equal(lines.length, 2);
  const [viaPino, byHand] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  // Same keys in the same order, same values (the timestamps may differ by a millisecond).
  assert.deepEqual(Object.keys(byHand!), Object.keys(viaPino!));
  assert.deepEqual({ ...byHand, time: 0 }, { ...viaPino, time: 0 });
  assert.equal(byHand!.path, '/a"b\u0001\\c');
  assert.equal(byHand!.network, 'net"1');
  assert.match(String(byHand!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('writeInfoLine writes nothing when info is below the level', () => {
  const { lines, stream } = sink();
  const log = createLogger({ name: 'unit', level: 'warn' }, stream);
  writeInfoLine(log, '"rid":"req-1"', '"request"');
  assert.equal(lines.length, 0);
  log.level = 'info';
  writeInfoLine(log, '"rid":"req-1"', '"request"');
  assert.equal(lines.length, 1);
});

test("addDetails: a failure's details never replace the line's own fields", () => {
  const line = { rid: 'req-1', status: 503, code: 'MDA_ERR_RESOLVER_UNAVAILABLE' };
  addDetails(line, { upstream: 'keystone', status: 401, reason: 'credentials refused' });
  assert.deepEqual(line, {
    rid: 'req-1',
    status: 503,
    code: 'MDA_ERR_RESOLVER_UNAVAILABLE',
    upstream: 'keystone',
    upstreamStatus: 401,
    reason: 'credentials refused',
  });
  // Without an upstream the renamed field says it is a detail; an equal value is not repeated.
  assert.deepEqual(addDetails({ status: 400, code: 'X' }, { code: 'Y', status: 400, limit: 3 }), {
    status: 400,
    code: 'X',
    detailCode: 'Y',
    limit: 3,
  });
});
