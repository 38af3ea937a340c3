/*
 * `metadata-proxy-daemon status` exit statuses (issue 23, item 3; docs/deployment.md "Status"): 0 when the
 * daemon answers and everything is healthy, 3 when anything is unhealthy, and 3 too when the daemon cannot
 * be asked (no socket, a stale socket, a daemon that hangs up), as `metadata-hooks status` reports an
 * unreachable daemon. The CLI runs as an operator runs it; no namespaces needed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '@nmp/common';
import { DEFAULT_LIMITS } from '@nmp/ns-metadata-proxy';
import { tempDir } from '@nmp/testkit';
import { MetadataProxyDaemon } from '../src/supervisor.js';
import { DAEMON_CLI } from './fixture.js';

/** The CLI, asynchronously: the daemons these tests talk to run in this process. */
function status(
  controlSocket: string,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(
      process.execPath,
      [DAEMON_CLI, 'status', '--daemon-control-socket', controlSocket, ...args],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      },
    );
    const timer = setTimeout(() => c.kill('SIGKILL'), 20_000);
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    c.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    c.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
}

test('no daemon on the control socket: exit 3, saying so (text and --json)', async (t) => {
  const socket = join(tempDir(t, 'nmp-daemon-status-'), 'control.sock');
  const text = await status(socket);
  assert.equal(text.code, 3, text.stderr);
  assert.equal(
    text.stdout,
    `daemon UNREACHABLE: metadata proxy daemon not reachable on ${socket} (ENOENT); is nmp-metadata-proxy-daemon.service running? (journalctl -u nmp-metadata-proxy-daemon)\n`,
  );
  assert.equal(text.stderr, '');
  const json = await status(socket, '--json');
  assert.equal(json.code, 3);
  const doc = JSON.parse(json.stdout) as { daemon: unknown; attachments: unknown[]; error: string };
  assert.equal(doc.daemon, null);
  assert.deepEqual(doc.attachments, []);
  assert.match(doc.error, /not reachable on .*\(ENOENT\)/);
});

test('a stale socket (the daemon was killed) and a daemon that hangs up: exit 3', async (t) => {
  const dir = tempDir(t, 'nmp-daemon-status-');
  // A process that listens on the socket and dies by SIGKILL leaves the socket file behind: ECONNREFUSED.
  const stale = join(dir, 'stale.sock');
  const child = spawn(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`,
  ]);
  t.after(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  const refused = await status(stale);
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stdout, /^daemon UNREACHABLE: .*\(ECONNREFUSED\)/);

  // Reads the request, then hangs up without an answer.
  const rude = createServer((s) => s.once('data', () => s.end()));
  const rudePath = join(dir, 'rude.sock');
  await listen(rude, rudePath);
  t.after(() => rude.close());
  const r = await status(rudePath);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stdout, /^daemon UNREACHABLE: the daemon closed the connection without answering/);
});

test('a daemon that answers: 0 when healthy, 3 when the agent is unreachable', async (t) => {
  const dir = tempDir(t, 'nmp-daemon-status-');
  const agentSocket = join(dir, 'agent.sock');
  const controlSocket = join(dir, 'ctl', 'control.sock');
  const daemon = new MetadataProxyDaemon({
    controlSocket,
    stateFile: join(dir, 'ctl', 'attachments.json'),
    worker: { socketPath: agentSocket, limits: DEFAULT_LIMITS, logLevel: 'silent' },
    netnsExec: 'ip',
    attachConcurrency: 1,
    helperTimeoutMs: 5_000,
    namespaceCheckIntervalMs: 60_000,
    logger: silentLogger(),
  });
  t.after(() => daemon.stop());
  await daemon.start();
  const down = await status(controlSocket);
  assert.equal(down.code, 3);
  assert.match(down.stdout, /agent .* UNREACHABLE; 0\/0 healthy/);
  const agent = createServer((s) => s.end());
  await listen(agent, agentSocket);
  t.after(() => agent.close());
  const up = await status(controlSocket);
  assert.equal(up.code, 0, up.stdout);
  assert.match(up.stdout, /agent .* reachable; 0\/0 healthy/);
});
