/*
 * Inherited listeners (sd_listen_fds(3) as systemd passes them, and our hand-over): parsing of
 * LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES, picking by name, the bound name of a passed UNIX socket, and a
 * real hand-over: a successor process serves the very socket this process listened on, with no moment
 * in which a connection is refused.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@nmp/testkit';
import { ConfigError } from '../src/config/load.js';
import { startSuccessor } from '../src/handover.js';
import {
  boundAs,
  InheritedListeners,
  listenerFd,
  takeInheritedListeners,
  unixSocketName,
} from '../src/listen-fds.js';
import { listenOnSocketPath, removeSocketFile } from '../src/unix-socket.js';

const always = () => true;

test('LISTEN_* for this pid: descriptors from 3 with their names; the variables are removed', () => {
  const env: NodeJS.ProcessEnv = {
    LISTEN_PID: '4242',
    LISTEN_FDS: '2',
    LISTEN_FDNAMES: 'metadata:admin-unix',
    PATH: '/bin',
  };
  assert.deepEqual(takeInheritedListeners(env, 4242, always), [
    { fd: 3, name: 'metadata' },
    { fd: 4, name: 'admin-unix' },
  ]);
  assert.deepEqual(env, { PATH: '/bin' });
});

test('LISTEN_* for another pid: nothing taken, variables removed all the same', () => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: '1', LISTEN_FDS: '1' };
  assert.deepEqual(takeInheritedListeners(env, 4242, always), []);
  assert.deepEqual(env, {});
  assert.deepEqual(takeInheritedListeners({}, 4242, always), []);
});

test('names only when there is one per descriptor, as sd_listen_fds_with_names', () => {
  assert.deepEqual(
    takeInheritedListeners({ LISTEN_PID: '7', LISTEN_FDS: '2', LISTEN_FDNAMES: 'one' }, 7, always),
    [
      { fd: 3, name: 'unknown' },
      { fd: 4, name: 'unknown' },
    ],
  );
  assert.deepEqual(takeInheritedListeners({ LISTEN_PID: '7', LISTEN_FDS: '1' }, 7, always), [
    { fd: 3, name: 'unknown' },
  ]);
});

test('malformed variables and closed descriptors are configuration errors', () => {
  assert.throws(() => takeInheritedListeners({ LISTEN_PID: 'x', LISTEN_FDS: '1' }, 7, always), ConfigError);
  assert.throws(() => takeInheritedListeners({ LISTEN_PID: '7', LISTEN_FDS: '-1' }, 7, always), ConfigError);
  assert.throws(
    () => takeInheritedListeners({ LISTEN_PID: '7', LISTEN_FDS: '2' }, 7, (fd) => fd === 3),
    /descriptor 4 is not open/,
  );
  // The real check: descriptor 3 of the test runner is not a listening socket we were given.
  assert.throws(
    () => takeInheritedListeners({ LISTEN_PID: String(process.pid), LISTEN_FDS: '1000' }),
    ConfigError,
  );
});

test('InheritedListeners: taken by name once; what nobody takes is reported', () => {
  const set = new InheritedListeners([
    { fd: 3, name: 'metadata' },
    { fd: 4, name: 'stray' },
  ]);
  assert.equal(set.take('metadata'), 3);
  assert.equal(set.take('metadata'), undefined);
  assert.equal(set.size, 1);
  assert.throws(() => set.checkAllTaken('agent', "'metadata'"), /4 \(stray\)/);
  assert.deepEqual(set.takeAll(), [{ fd: 4, name: 'stray' }]);
  set.checkAllTaken('agent', "'metadata'");
});

test('a socket bound by listenOnSocketPath keeps its path when its listener closes; its bound name is known', async (t) => {
  const dir = tempDir(t, 'nmp-lfd-');
  const path = join(dir, 's.sock');
  const server = createServer();
  await listenOnSocketPath(server, path, { what: 'test socket', mode: 0o600 });
  const fd = listenerFd(server);
  assert.ok(fd !== undefined && fd > 2);
  const name = unixSocketName(fd);
  assert.ok(name !== undefined && boundAs(name, path), `bound as ${name}`);
  assert.equal(boundAs(`${path}.~12`, path), true);
  assert.equal(boundAs(`${path}.~x`, path), false);
  assert.equal(boundAs(`${path}x`, path), false);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(existsSync(path), 'the path outlives the listener (a successor may serve it)');
  assert.ok(!existsSync(`${path}.~${process.pid}`));
  await removeSocketFile(path);
  assert.ok(!existsSync(path));
});

/** A successor as the services make one: takes fd 3, serves it, says ready. */
const SUCCESSOR = `
import { createServer } from 'node:net';
import { takeInheritedListeners } from ${JSON.stringify(fileURLToPath(new URL('../src/listen-fds.js', import.meta.url)))};
import { takePredecessor } from ${JSON.stringify(fileURLToPath(new URL('../src/handover.js', import.meta.url)))};
const [l] = takeInheritedListeners();
const predecessor = takePredecessor();
if (process.argv[2] === 'fail') process.exit(3);
const server = createServer((s) => s.end('successor ' + process.pid + ' ' + l.name + ' ' + (process.env.LISTEN_FDS ?? '-')));
server.listen({ fd: l.fd }, () => predecessor.ready());
process.on('SIGTERM', () => server.close());
`;

function ask(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const s = connect(path);
    s.on('data', (d) => {
      out += d.toString();
    });
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

test('hand-over: the successor serves the same socket; no connection is refused on the way', async (t) => {
  const dir = tempDir(t, 'nmp-hov-');
  const script = join(dir, 'successor.mjs');
  writeFileSync(script, SUCCESSOR);
  const path = join(dir, 'h.sock');
  const server: Server = createServer((s) => s.end('predecessor'));
  await listenOnSocketPath(server, path, { what: 'test socket', mode: 0o600 });
  assert.equal(await ask(path), 'predecessor');

  // Connections made all along must all be answered, by one or the other.
  let asking = true;
  const answers: string[] = [];
  const prober = (async () => {
    while (asking) answers.push(await ask(path).catch((e: Error) => `error ${e.message}`));
  })();
  const successor = startSuccessor({
    fds: [{ name: 'test', fd: listenerFd(server)! }],
    timeoutMs: 20_000,
    argv: [process.execPath, script],
  });
  t.after(() => {
    try {
      process.kill(successor.pid, 'SIGKILL');
    } catch {}
  });
  await successor.ready;
  successor.release();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const after = await ask(path);
  asking = false;
  await prober;
  assert.match(
    after,
    new RegExp(`^successor ${successor.pid} test -$`),
    'LISTEN_* consumed by the successor',
  );
  assert.ok(answers.length > 0);
  assert.deepEqual(
    answers.filter((a) => a !== 'predecessor' && !a.startsWith('successor ')),
    [],
    'every connection answered',
  );
  process.kill(successor.pid, 'SIGTERM');
});

test('hand-over: a successor that fails is reported and this process keeps its listener', async (t) => {
  const dir = tempDir(t, 'nmp-hov-');
  const script = join(dir, 'successor.mjs');
  writeFileSync(script, SUCCESSOR);
  const path = join(dir, 'f.sock');
  const server = createServer((s) => s.end('still here'));
  await listenOnSocketPath(server, path, { what: 'test socket', mode: 0o600 });
  t.after(() => server.close());
  const successor = startSuccessor({
    fds: [{ name: 'test', fd: listenerFd(server)! }],
    timeoutMs: 20_000,
    argv: [process.execPath, script, 'fail'],
  });
  await assert.rejects(successor.ready, /exited before serving \(status 3\)/);
  assert.equal(await ask(path), 'still here');
  assert.throws(() => startSuccessor({ fds: [{ name: 'a:b', fd: 0 }], timeoutMs: 1 }), /free of ':'/);
});

/** A stand-in for systemd's notification socket: prints every datagram, closes passed descriptors (the barrier). */
const FAKE_NOTIFY = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('bound', flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array('i')
            fds.frombytes(data[: len(data) - len(data) % 4])
            for fd in fds:
                os.close(fd)
    print(msg.decode().replace(chr(10), ' '), flush=True)
`;

test('under systemd (NOTIFY_SOCKET), the successor tells it MAINPID= and READY=1 before the predecessor retires', async (t) => {
  const notify = spawnSync('systemd-notify', ['--help'], { encoding: 'utf8' });
  if (notify.status !== 0) {
    if (process.getuid?.() === 0) throw new Error('systemd-notify is missing (apt-get install systemd)');
    t.skip('systemd-notify is not installed');
    return;
  }
  const dir = tempDir(t, 'nmp-hov-');
  const notifySocket = join(dir, 'notify');
  const fake = spawn('/usr/bin/python3', ['-c', FAKE_NOTIFY, notifySocket], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => fake.kill('SIGKILL'));
  let heard = '';
  fake.stdout!.on('data', (d: Buffer) => {
    heard += d.toString();
  });
  for (let i = 0; i < 100 && !heard.includes('bound'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(heard.includes('bound'), 'the fake notification socket is up');

  const script = join(dir, 'successor.mjs');
  writeFileSync(script, SUCCESSOR);
  const server = createServer((s) => s.end('predecessor'));
  await listenOnSocketPath(server, join(dir, 'n.sock'), { what: 'test socket', mode: 0o600 });
  t.after(() => server.close());
  const successor = startSuccessor({
    fds: [{ name: 'test', fd: listenerFd(server)! }],
    timeoutMs: 20_000,
    env: { ...process.env, NOTIFY_SOCKET: notifySocket },
    argv: [process.execPath, script],
  });
  t.after(() => {
    try {
      process.kill(successor.pid, 'SIGKILL');
    } catch {}
  });
  await successor.ready;
  successor.release();
  // Told before "ready" reached us: systemd knows the new main process before the old one exits.
  assert.match(heard, new RegExp(`^MAINPID=${successor.pid} READY=1$`, 'm'));
});
