/*
 * The control plane without namespaces (no root needed): request validation, the attachments file
 * (atomic, coalesced, bad entries reported), and a daemon's control socket: root-only mode, one answer
 * per line, refusals that keep nothing, no second daemon on the same socket.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '@nmp/common';
import { DEFAULT_LIMITS } from '@nmp/ns-metadata-proxy';
import { tempDir } from '@nmp/testkit';
import {
  type AttachSpec,
  DaemonRequestError,
  daemonClient,
  ProtocolError,
  parseRequest,
} from '../src/protocol.js';
import { loadState, StateFile } from '../src/state-file.js';
import { MetadataProxyDaemon } from '../src/supervisor.js';

test('requests are validated before anything happens', () => {
  const good = {
    op: 'attach',
    id: 'net-1',
    mode: 'network',
    namespace: 'qdhcp-net-1',
    binds: ['169.254.169.254:80'],
  };
  assert.deepEqual(parseRequest(JSON.stringify(good)), good);
  const ovn = { ...good, mode: 'ovn', namespace: 'ovnmeta-net-1' };
  assert.deepEqual(parseRequest(JSON.stringify(ovn)), ovn);
  assert.deepEqual(parseRequest('{"op":"detach","namespace":"qdhcp-x"}'), {
    op: 'detach',
    namespace: 'qdhcp-x',
  });
  assert.deepEqual(parseRequest('{"op":"detach","id":"r1","mode":"router"}'), {
    op: 'detach',
    id: 'r1',
    mode: 'router',
  });
  for (const bad of [
    'not json',
    '[]',
    '{"op":"reboot"}',
    JSON.stringify({ ...good, namespace: '../etc' }),
    JSON.stringify({ ...good, namespace: 'a/b' }),
    JSON.stringify({ ...good, id: '' }),
    JSON.stringify({ ...good, mode: 'both' }),
    JSON.stringify({ ...good, binds: [] }),
    JSON.stringify({ ...good, binds: ['fe80::1:80'] }),
    JSON.stringify({ ...good, binds: ['[fe80::a9fe:a9fe]:80'] }),
    JSON.stringify({ ...good, binds: [80] }),
    '{"op":"detach"}',
  ])
    assert.throws(() => parseRequest(bad), ProtocolError, bad);
});

test('attachments file: atomic rewrite, coalesced saves, bad entries reported not fatal', async (t) => {
  const dir = tempDir(t, 'nmp-daemon-unit-');
  const file = join(dir, 'state', 'attachments.json');
  const list: AttachSpec[] = [{ id: 'n1', mode: 'network', namespace: 'ns1', binds: ['169.254.169.254:80'] }];
  const state = new StateFile(file, () => list);
  assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
  const saves = [state.save(), state.save(), state.save()];
  list.push({ id: 'r1', mode: 'router', namespace: 'ns2', binds: ['[::]:9697'] });
  await Promise.all(saves);
  assert.deepEqual(loadState(file), { attachments: list, rejected: [] });
  assert.equal(statSync(file).mode & 0o777, 0o600);

  const raw = JSON.parse(readFileSync(file, 'utf8'));
  raw.attachments.push({ id: 'x', mode: 'network', namespace: 'ns1', binds: ['1.2.3.4:80'] }); // duplicate ns
  raw.attachments.push({ id: 'y', mode: 'nope', namespace: 'ns3', binds: ['1.2.3.4:80'] });
  writeFileSync(file, JSON.stringify(raw));
  const loaded = loadState(file);
  assert.deepEqual(loaded.attachments, list);
  assert.equal(loaded.rejected.length, 2);
  assert.deepEqual(loadState(join(dir, 'missing.json')), { attachments: [], rejected: [] });
});

test('control socket: mode 0600, one answer per line, refused attach keeps nothing, one daemon per socket', async (t) => {
  const dir = tempDir(t, 'nmp-daemon-unit-');
  const controlSocket = join(dir, 'ctl', 'control.sock');
  const settings = {
    controlSocket,
    stateFile: join(dir, 'ctl', 'attachments.json'),
    worker: { socketPath: join(dir, 'no-agent.sock'), limits: DEFAULT_LIMITS, logLevel: 'silent' },
    netnsExec: 'ip' as const,
    attachConcurrency: 2,
    helperTimeoutMs: 5_000,
    namespaceCheckIntervalMs: 60_000,
    logger: silentLogger(),
  };
  const daemon = new MetadataProxyDaemon(settings);
  t.after(() => daemon.stop());
  await daemon.start();
  assert.equal(statSync(controlSocket).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'ctl')).mode & 0o777, 0o700);

  const empty = await daemonClient.list(controlSocket);
  assert.deepEqual(empty.attachments, []);
  assert.equal(empty.daemon.agentReachable, false);
  assert.equal(typeof empty.daemon.workerPid, 'number');

  await assert.rejects(
    daemonClient.attach(controlSocket, {
      id: 'n1',
      mode: 'network',
      namespace: 'nmp-no-such-namespace-here',
      binds: ['169.254.169.254:80'],
    }),
    (err: Error) => err instanceof DaemonRequestError && /does not exist/.test(err.message),
  );
  assert.equal((await daemonClient.list(controlSocket)).attachments.length, 0);
  assert.deepEqual(loadState(settings.stateFile).attachments, []);
  assert.equal(await daemonClient.detach(controlSocket, { namespace: 'never-attached' }), undefined);

  // Several lines on one connection: answered in order; a bad one does not end the connection.
  const answers = await new Promise<string[]>((resolve, reject) => {
    const s = connect(controlSocket);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      buf += c;
      const lines = buf.split('\n').filter((l) => l !== '');
      if (lines.length === 3) {
        s.end();
        resolve(lines);
      }
    });
    s.on('error', reject);
    s.write('{"op":"list"}\nthis is not json\n{"op":"detach","namespace":"x"}\n');
  });
  assert.equal(JSON.parse(answers[0]!).ok, true);
  assert.deepEqual(JSON.parse(answers[1]!), { ok: false, error: 'request is not JSON' });
  assert.deepEqual(JSON.parse(answers[2]!), { ok: true });

  const second = new MetadataProxyDaemon({ ...settings, stateFile: join(dir, 'other.json') });
  await assert.rejects(
    second.start(),
    /another process is listening there \(another metadata-proxy-daemon\)/,
  );
  await second.stop();
});

test('control socket path that is not a socket: the daemon refuses to start and removes nothing', async (t) => {
  const dir = tempDir(t, 'nmp-daemon-unit-');
  const controlSocket = join(dir, 'control.sock');
  writeFileSync(controlSocket, 'precious, not a socket');
  const daemon = new MetadataProxyDaemon({
    controlSocket,
    stateFile: join(dir, 'attachments.json'),
    worker: { socketPath: join(dir, 'no-agent.sock'), limits: DEFAULT_LIMITS, logLevel: 'silent' },
    netnsExec: 'ip' as const,
    attachConcurrency: 1,
    helperTimeoutMs: 5_000,
    namespaceCheckIntervalMs: 60_000,
    logger: silentLogger(),
  });
  t.after(() => daemon.stop());
  await assert.rejects(daemon.start(), {
    message: `daemon_control_socket ${controlSocket} exists and is not a socket; refusing to remove it`,
  });
  assert.equal(readFileSync(controlSocket, 'utf8'), 'precious, not a socket');
  assert.equal(daemon.workerPid, undefined, 'no worker was started');
});
