import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { tempDir } from '@nmp/testkit';
import { addDetails, createLogger, isoTimeField, writeInfoLine } from '../src/logger.js';

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

/** A child process that logs `count` lines to `file` (writeInfoLine and pino's warn in turn), then `ending`. */
function logInChild(file: string, count: number, ending: string): Promise<number | null> {
  const logger = new URL('../src/logger.js', import.meta.url).href;
  const script = `
    const { createLogger, writeInfoLine } = await import(${JSON.stringify(logger)});
    const log = createLogger({ name: 'unit', file: ${JSON.stringify(file)} });
    // The file is opened asynchronously; a service logs long after it is open.
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < ${count}; i++) {
      if (i % 7 === 3) log.warn({ i }, 'warned');
      else writeInfoLine(log, '"i":' + i, '"request"');
    }
    ${ending}
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

function linesOf(file: string): Array<{ i: number; msg: string; level: string }> {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

test('a file logger writes every line, in order, when the process exits at once', async (t) => {
  const dir = tempDir(t, 'nmp-log-');
  const file = join(dir, 'a.log');
  // 20,000 lines (about 1.3 MB): some chunks are still being written by the stream when exit() comes.
  assert.equal(await logInChild(file, 20_000, 'process.exit(0);'), 0);
  const lines = linesOf(file);
  assert.equal(lines.length, 20_000);
  lines.forEach((l, i) => {
    assert.equal(l.i, i);
    assert.equal(l.msg, i % 7 === 3 ? 'warned' : 'request');
  });
});

test('a file logger writes its lines within the flush interval while the process runs', async (t) => {
  const dir = tempDir(t, 'nmp-log-');
  const file = join(dir, 'b.log');
  // Three lines (far below a chunk), then the process stays up: the timer must push them out.
  const exited = logInChild(
    file,
    3,
    `const t0 = Date.now();
     const { readFileSync } = await import('node:fs');
     const poll = setInterval(() => {
       let n = 0;
       try { n = readFileSync(${JSON.stringify(file)}, 'utf8').split('\\n').filter(Boolean).length; } catch {}
       if (n === 3 || Date.now() - t0 > 5000) process.exit(n === 3 ? 0 : 3);
     }, 20);`,
  );
  // The child checked while it ran (before any exit handler): 0 when all three lines were in the file.
  assert.equal(await exited, 0);
  assert.deepEqual(
    linesOf(file).map((l) => l.i),
    [0, 1, 2],
  );
});

test('the cached timestamp field is what toISOString prints, across seconds, jumps back and odd years', () => {
  const expect = (ms: number) => `,"time":"${new Date(ms).toISOString()}"`;
  const start = Date.UTC(2026, 11, 7, 21, 3, 58, 990);
  for (let ms = start; ms < start + 2_100; ms++) assert.equal(isoTimeField(ms), expect(ms));
  for (const ms of [
    start - 1,
    start + 86_400_000,
    start,
    0,
    -1,
    -999,
    -1000,
    253_402_300_799_999,
    253_402_300_800_000,
  ])
    assert.equal(isoTimeField(ms), expect(ms));
  let x = 12345;
  for (let i = 0; i < 2000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const ms = start + (x % 5_000) - 2_500;
    assert.equal(isoTimeField(ms), expect(ms));
  }
});
