/*
 * The drop-in's logs (`<config>.log`, the proxy's output when neutron starts it through haproxy-compat) go
 * when neutron destroys the proxy: haproxy-kill TERM or KILL removes the log of the proxy it signals, and a
 * log whose config is gone (a proxy that died before neutron destroyed it) is swept at the next start.
 * Nothing else is removed: not a log under another name, not another file the proxy writes to, not on HUP.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { tempDir } from '@nmp/testkit';
import { haproxyKill, removeOrphanLogs } from '../src/haproxy-compat.js';

/** A process that looks like a drop-in proxy (its title, as the proxy sets it) writing to `output`. */
async function fakeProxy(t: TestContext, config: string, output: string): Promise<number> {
  const out = openSync(output, 'a');
  const child = spawn(
    process.execPath,
    [
      '-e',
      `process.title = ${JSON.stringify(`ns-metadata-proxy network net-1 -f ${config}`)};` +
        "console.log('listening'); setInterval(() => {}, 1000);",
    ],
    { stdio: ['ignore', out, out] },
  );
  closeSync(out);
  t.after(() => child.kill('SIGKILL'));
  const exited = new Promise((r) => child.once('exit', r));
  t.after(() => exited);
  for (let i = 0; i < 100; i++) {
    try {
      if (readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('ns-metadata-proxy ')) break;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return child.pid!;
}

test('haproxy-kill TERM removes the log of the proxy it stops; HUP does not', async (t) => {
  const dir = tempDir(t, 'nmp-compat-logs-');
  const config = join(dir, 'net-1.conf');
  writeFileSync(config, '# neutron writes this\n');
  const log = `${config}.log`;
  const pid = await fakeProxy(t, config, log);
  haproxyKill('HUP', String(pid));
  assert.ok(existsSync(log), 'a reload keeps the log');
  const again = await fakeProxy(t, config, log);
  haproxyKill('15', String(again));
  assert.equal(existsSync(log), false, 'the destroyed proxy left its log');
  assert.ok(existsSync(config), 'the config is neutron’s to delete');
});

test('haproxy-kill KILL removes the log; output that is not <config>.log stays', async (t) => {
  const dir = tempDir(t, 'nmp-compat-logs-');
  const config = join(dir, 'net-1.conf');
  writeFileSync(config, '');
  const log = join(dir, 'net-1.conf.log');
  await fakeProxy(t, config, log).then((pid) => haproxyKill('KILL', String(pid)));
  assert.equal(existsSync(log), false);
  const other = join(dir, 'something-else.log');
  await fakeProxy(t, config, other).then((pid) => haproxyKill('TERM', String(pid)));
  assert.ok(existsSync(other), 'a file of another name is not the drop-in log');
});

test('removeOrphanLogs: logs whose config is gone, and only those', (t) => {
  const dir = tempDir(t, 'nmp-compat-logs-');
  for (const f of ['a.conf', 'a.conf.log', 'b.conf.log', 'notes.log', 'c.conf'])
    writeFileSync(join(dir, f), '');
  assert.deepEqual(removeOrphanLogs(join(dir, 'c.conf')), [join(dir, 'b.conf.log')]);
  for (const f of ['a.conf', 'a.conf.log', 'notes.log', 'c.conf']) assert.ok(existsSync(join(dir, f)), f);
  assert.equal(existsSync(join(dir, 'b.conf.log')), false);
});
