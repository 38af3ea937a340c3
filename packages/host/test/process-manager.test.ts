/*
 * The proxy process manager with a stand-in proxy (no root needed): pid files, the "running" rule (alive
 * and the id on its command line), stale pid files, idempotent start, restart on a changed launch, and
 * SIGTERM -> SIGKILL after the kill timeout.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { activePid, ProxyStartError, processInfo, startProxy, stopProxy } from '../src/process-manager.js';

const FAKE = `
import { createServer } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
const args = process.argv.slice(2);
const pidFile = args[args.indexOf('--pid-file') + 1];
if (args.includes('--exit-now')) { console.error('fake proxy: refusing to start'); process.exit(3); }
const s = createServer();
s.listen(0, '127.0.0.1', () => { if (!args.includes('--never-ready')) writeFileSync(pidFile, process.pid + '\\n'); });
process.on('SIGTERM', () => {
  if (args.includes('--ignore-term')) return;
  s.close(); rmSync(pidFile, { force: true }); process.exit(0);
});
`;

function setup(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'nmp-pm-'));
  const script = join(dir, 'fake-proxy.mjs');
  writeFileSync(script, FAKE);
  const id = randomUUID();
  const pidFile = join(dir, 'pids', `${id}.pid.ns-metadata-proxy`);
  const pids = new Set<number>();
  t.after(() => {
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const launch = (...extra: string[]) => ({
    id,
    argv: [process.execPath, script, '--network-id', id, '--pid-file', pidFile, ...extra],
    pidFile,
    logFile: join(dir, 'logs', `${id}.log`),
  });
  return { dir, id, pidFile, pids, launch };
}

test('start, idempotent start, restart on change, stop', async (t) => {
  const s = setup(t);
  const a = await startProxy(s.launch());
  s.pids.add(a.pid);
  assert.equal(a.action, 'started');
  assert.equal(activePid(s.pidFile, s.id), a.pid);
  assert.ok(processInfo(a.pid).cmdline.includes(s.id));

  const b = await startProxy(s.launch());
  assert.deepEqual(b, { pid: a.pid, action: 'unchanged' });

  const c = await startProxy(s.launch('--changed'));
  s.pids.add(c.pid);
  assert.equal(c.action, 'restarted');
  assert.notEqual(c.pid, a.pid);
  assert.equal(processInfo(a.pid).alive, false);

  assert.equal(await stopProxy(s.pidFile, s.id), 'terminated');
  assert.equal(processInfo(c.pid).alive, false);
  assert.equal(existsSync(s.pidFile), false);
  assert.equal(await stopProxy(s.pidFile, s.id), 'not-running');
});

test('stale pid files are ignored and replaced: dead pid, and a live process of someone else', async (t) => {
  const s = setup(t);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(s.dir, 'pids'), { recursive: true });
  writeFileSync(s.pidFile, '4194300\n');
  assert.equal(activePid(s.pidFile, s.id), undefined);
  // Our own pid: alive, but its command line does not name the id.
  writeFileSync(s.pidFile, `${process.pid}\n`);
  assert.equal(activePid(s.pidFile, s.id), undefined);
  assert.equal(await stopProxy(s.pidFile, s.id), 'not-running'); // and it did not signal us
  writeFileSync(s.pidFile, `${process.pid}\n`);
  const r = await startProxy(s.launch());
  s.pids.add(r.pid);
  assert.equal(r.action, 'started');
  assert.equal(readFileSync(s.pidFile, 'utf8').trim(), String(r.pid));
});

test('a killed proxy is not running, and start brings it back', async (t) => {
  const s = setup(t);
  const a = await startProxy(s.launch());
  s.pids.add(a.pid);
  process.kill(a.pid, 'SIGKILL');
  for (let i = 0; i < 100 && processInfo(a.pid).alive; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(activePid(s.pidFile, s.id), undefined);
  const b = await startProxy(s.launch());
  s.pids.add(b.pid);
  assert.equal(b.action, 'started');
  assert.notEqual(b.pid, a.pid);
});

test('SIGTERM ignored: SIGKILL after the kill timeout', async (t) => {
  const s = setup(t);
  const a = await startProxy(s.launch('--ignore-term'));
  s.pids.add(a.pid);
  const t0 = Date.now();
  assert.equal(await stopProxy(s.pidFile, s.id, { killTimeoutMs: 400 }), 'killed');
  assert.ok(Date.now() - t0 >= 400);
  assert.equal(processInfo(a.pid).alive, false);
});

test('a proxy that exits at once: error with its output', async (t) => {
  const s = setup(t);
  await assert.rejects(startProxy(s.launch('--exit-now')), (e: unknown) => {
    assert.ok(e instanceof ProxyStartError);
    assert.match(e.message, /exited before it was ready \(exit 3\)/);
    assert.match(e.message, /refusing to start/);
    return true;
  });
});

test('a proxy that never becomes ready: killed after the start timeout', async (t) => {
  const s = setup(t);
  await assert.rejects(
    startProxy(s.launch('--never-ready'), { startTimeoutMs: 500 }),
    /did not write .* within 500 ms/,
  );
});
