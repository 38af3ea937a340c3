/*
 * The agent on a real UNIX socket in front of a stand-in Nova: what Nova receives (and only that), error
 * mapping with bodies, the one re-lookup after a cached answer, relaying byte-exact, and socket handling.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { type InstanceIdentity, type InstanceResolver, type LookupQuery, signInstanceId } from '@nmp/common';
import { socketModeFor } from '../src/options.js';
import {
  INSTANCE,
  NET,
  PROJECT,
  ROUTER,
  SECRET,
  startAgent,
  startStubNova,
  tempDir,
  viaSocket,
} from './helpers.js';

const H = (xff: string, extra: Record<string, string> = {}) => ({
  'x-neutron-network-id': NET,
  'x-forwarded-for': xff,
  ...extra,
});

test('Nova receives exactly the identity headers, signed, and none of the instance headers', async (t) => {
  const nova = await startStubNova(t);
  const { socketPath } = await startAgent(t, { novaPort: nova.port });
  const res = await viaSocket(socketPath, {
    path: '/openstack/latest/meta_data.json?foo=bar&x=1',
    headers: H('10.0.0.5', { 'user-agent': 'evil', 'content-type': 'text/evil', 'x-instance-id': 'evil' }),
  });
  assert.equal(res.status, 200);
  const seen = nova.seen[0]!;
  assert.equal(seen.url, '/openstack/latest/meta_data.json?foo=bar&x=1');
  assert.equal(seen.headers['x-instance-id'], INSTANCE);
  assert.equal(seen.headers['x-tenant-id'], PROJECT);
  assert.equal(
    seen.headers['x-instance-id-signature'],
    '2492ca1406ea720022b5dbc635e1e405a75b5345ad8100f885053b793ba9f99f',
  );
  assert.equal(seen.headers['x-forwarded-for'], '10.0.0.5');
  assert.equal(seen.headers['user-agent'], undefined);
  assert.equal(seen.headers['content-type'], undefined);
  assert.match(String(seen.headers['x-openstack-request-id']), /^req-/);
});

test('the last X-Forwarded-For value is the one looked up and sent', async (t) => {
  const nova = await startStubNova(t);
  const { socketPath } = await startAgent(t, { novaPort: nova.port });
  const res = await viaSocket(socketPath, { headers: H('10.0.0.6, 10.0.0.5') });
  assert.equal(res.status, 200);
  assert.equal(nova.seen[0]!.headers['x-instance-id'], INSTANCE);
  assert.equal(nova.seen[0]!.headers['x-forwarded-for'], '10.0.0.5');
});

test('IPv4-mapped, IPv6 and link-local sources; router mode', async (t) => {
  const nova = await startStubNova(t);
  const { socketPath } = await startAgent(t, { novaPort: nova.port });
  for (const xff of ['::ffff:10.0.0.5', '2001:db8::5', 'fe80::f816:3eff:febe:3d62']) {
    const res = await viaSocket(socketPath, { headers: H(xff) });
    assert.equal(res.status, 200, xff);
  }
  const r = await viaSocket(socketPath, {
    headers: { 'x-neutron-router-id': ROUTER, 'x-forwarded-for': '::ffff:10.0.0.6' },
  });
  assert.equal(r.status, 200);
  assert.deepEqual(
    nova.seen.map((s) => [s.headers['x-instance-id'], s.headers['x-forwarded-for']]),
    [
      [INSTANCE, '::ffff:10.0.0.5'],
      [INSTANCE, '2001:db8::5'],
      [INSTANCE, 'fe80::f816:3eff:febe:3d62'],
      ['instance-b', '::ffff:10.0.0.6'],
    ],
  );
});

test('agent errors: both ids 400, unknown address 404 naming the network, unknown router 404', async (t) => {
  const nova = await startStubNova(t);
  const { socketPath, logs } = await startAgent(t, { novaPort: nova.port });
  const both = await viaSocket(socketPath, { headers: H('10.0.0.5', { 'x-neutron-router-id': 'r1' }) });
  assert.equal(both.status, 400);
  assert.equal(both.body.toString(), `Both network ${NET} and router r1 defined.\n`);
  assert.equal(both.headers['content-type'], 'text/plain; charset=UTF-8');
  const none = await viaSocket(socketPath, { headers: H('10.9.9.9') });
  assert.equal(none.status, 404);
  assert.equal(none.body.toString(), `Instance was not found on network ${NET}.\n`);
  const router = await viaSocket(socketPath, {
    headers: { 'x-neutron-router-id': 'r1', 'x-forwarded-for': '10.0.0.5' },
  });
  assert.equal(router.status, 404);
  assert.equal(router.body.toString(), 'Instance was not found on router r1.\n');
  assert.equal(nova.seen.length, 0);
  const lines = logs.lines().filter((l) => l.msg === 'request');
  assert.deepEqual(
    lines.map((l) => [l.status, l.code]),
    [
      [400, 'MDA_ERR_BOTH_IDS'],
      [404, 'MDA_ERR_PORT_NOT_FOUND'],
      [404, 'MDA_ERR_PORT_NOT_FOUND'],
    ],
  );
  assert.equal(lines[1]!.case, 'no port with a device', JSON.stringify(lines[1]));
});

test('Nova unreachable: 503 with the message neutron uses', async (t) => {
  const nova = await startStubNova(t);
  const port = nova.port;
  await new Promise<void>((r) => nova.server.close(() => r()));
  const { socketPath, logs } = await startAgent(t, { novaPort: port });
  const res = await viaSocket(socketPath, { headers: H('10.0.0.5') });
  assert.equal(res.status, 503);
  assert.equal(
    res.body.toString(),
    'The remote metadata server is temporarily unavailable. Please try again later.\n',
  );
  assert.equal(logs.lines().find((l) => l.msg === 'request')?.code, 'MDA_ERR_NOVA_UNREACHABLE');
});

test('Nova too slow: 504', async (t) => {
  const nova = await startStubNova(t);
  nova.respond = () => {};
  const { socketPath, logs } = await startAgent(t, { novaPort: nova.port, nova: { timeoutMs: 300 } });
  const res = await viaSocket(socketPath, { headers: H('10.0.0.5') });
  assert.equal(res.status, 504);
  assert.equal(logs.lines().find((l) => l.msg === 'request')?.code, 'MDA_ERR_NOVA_TIMEOUT');
});

test('Nova answers garbage: 502', async (t) => {
  const garbage = createNetServer((s) => s.end('SSH-2.0-OpenSSH\r\n\r\n'));
  await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
  t.after(() => void garbage.close());
  const port = (garbage.address() as { port: number }).port;
  const { socketPath, logs } = await startAgent(t, { novaPort: port });
  const res = await viaSocket(socketPath, { headers: H('10.0.0.5') });
  assert.equal(res.status, 502);
  assert.equal(logs.lines().find((l) => l.msg === 'request')?.code, 'MDA_ERR_NOVA_BAD_RESPONSE');
});

test('Nova 403 is relayed and the log says the secrets probably differ, without any secret', async (t) => {
  const nova = await startStubNova(t);
  nova.respond = (_req, res) => {
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end('Invalid proxy request signature.');
  };
  const { socketPath, logs } = await startAgent(t, { novaPort: nova.port });
  const res = await viaSocket(socketPath, { headers: H('10.0.0.5') });
  assert.equal(res.status, 403);
  assert.equal(res.body.toString(), 'Invalid proxy request signature.');
  const line = logs.lines().find((l) => l.msg === 'request');
  assert.equal(line?.code, 'MDA_ERR_NOVA_FORBIDDEN');
  assert.equal(line?.level, 'warn');
  assert.match(String(line?.hint), /shared secrets do not match/);
  assert.ok(!logs.text().includes(SECRET), 'secret in logs');
  assert.ok(!logs.text().includes(signInstanceId(SECRET, INSTANCE)), 'signature in logs');
});

test('any Nova status is relayed, not turned into 500', async (t) => {
  const nova = await startStubNova(t);
  nova.respond = (req, res) => {
    const status = Number(req.url!.slice(1));
    res.writeHead(status, { 'content-type': 'text/html; charset=UTF-8', location: '/x' });
    res.end(`status ${status}`);
  };
  const { socketPath } = await startAgent(t, { novaPort: nova.port });
  for (const status of [201, 301, 400, 401, 405, 409, 429, 500, 502, 503]) {
    const res = await viaSocket(socketPath, { path: `/${status}`, headers: H('10.0.0.5') });
    assert.equal(res.status, status);
    assert.equal(res.body.toString(), `status ${status}`);
  }
});

test('binary and gzip user data come back byte-exact; HEAD has the GET length and no body', async (t) => {
  const nova = await startStubNova(t);
  const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
  const gz = gzipSync(Buffer.from('#cloud-config\nhostname: a\n'));
  nova.respond = (req, res) => {
    const body = req.url!.endsWith('gz') ? gz : binary;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const { socketPath } = await startAgent(t, { novaPort: nova.port });
  const a = await viaSocket(socketPath, {
    path: '/user_data',
    headers: H('10.0.0.5', { 'accept-encoding': 'gzip' }),
  });
  assert.deepEqual(a.body, binary);
  const b = await viaSocket(socketPath, {
    path: '/user_data_gz',
    headers: H('10.0.0.5', { 'accept-encoding': 'gzip' }),
  });
  assert.deepEqual(b.body, gz);
  assert.equal(b.headers['content-encoding'], undefined);
  const h = await viaSocket(socketPath, { method: 'HEAD', path: '/user_data', headers: H('10.0.0.5') });
  assert.equal(h.headers['content-length'], '256');
  assert.equal(h.body.length, 0);
  assert.equal(nova.seen.at(-1)!.method, 'HEAD');
});

test('a POST body reaches Nova verbatim', async (t) => {
  const nova = await startStubNova(t);
  const { socketPath } = await startAgent(t, { novaPort: nova.port });
  const res = await viaSocket(socketPath, {
    method: 'POST',
    path: '/openstack/latest/password',
    headers: H('10.0.0.5'),
    body: 'c2VjcmV0cGFzc3dvcmQ=',
  });
  assert.equal(res.status, 200);
  assert.equal(nova.seen[0]!.method, 'POST');
  assert.equal(nova.seen[0]!.body.toString(), 'c2VjcmV0cGFzc3dvcmQ=');
  assert.equal(nova.seen[0]!.headers['content-length'], '20');
});

/** A resolver whose answers the test scripts, counting calls. */
class ScriptedResolver implements InstanceResolver {
  calls: Array<{ query: LookupQuery; noCache: boolean }> = [];
  constructor(private readonly answers: InstanceIdentity[]) {}
  async resolve(query: LookupQuery, options?: { noCache?: boolean }): Promise<InstanceIdentity> {
    this.calls.push({ query, noCache: options?.noCache === true });
    return this.answers[Math.min(this.calls.length - 1, this.answers.length - 1)]!;
  }
  async close(): Promise<void> {}
}

test('Nova 404 after a cached answer: exactly one uncached re-lookup, then the new instance is served', async (t) => {
  const nova = await startStubNova(t);
  nova.respond = (req, res) => {
    const ok = req.headers['x-instance-id'] === 'new-instance';
    res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' });
    res.end(ok ? 'new' : 'gone');
  };
  const resolver = new ScriptedResolver([
    { instanceId: 'old-instance', projectId: 'p', cached: true },
    { instanceId: 'new-instance', projectId: 'p', cached: false },
  ]);
  const { socketPath } = await startAgent(t, { novaPort: nova.port, resolver });
  const res = await viaSocket(socketPath, { headers: H('10.0.0.5') });
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'new');
  assert.deepEqual(
    resolver.calls.map((c) => c.noCache),
    [false, true],
  );
  assert.equal(nova.seen.length, 2);
});

test('Nova 404 after a cached answer that is still right: relayed, no second Nova request', async (t) => {
  const nova = await startStubNova(t);
  nova.respond = (_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('no such file');
  };
  const same = { instanceId: 'i', projectId: 'p' };
  const resolver = new ScriptedResolver([
    { ...same, cached: true },
    { ...same, cached: false },
  ]);
  const { socketPath } = await startAgent(t, { novaPort: nova.port, resolver });
  const res = await viaSocket(socketPath, { headers: H('10.0.0.5') });
  assert.equal(res.status, 404);
  assert.equal(res.body.toString(), 'no such file');
  assert.equal(resolver.calls.length, 2);
  assert.equal(nova.seen.length, 1);
});

test('Nova 404 on an uncached answer: no re-lookup', async (t) => {
  const nova = await startStubNova(t);
  nova.respond = (_req, res) => {
    res.writeHead(404);
    res.end();
  };
  const resolver = new ScriptedResolver([{ instanceId: 'i', projectId: 'p', cached: false }]);
  const { socketPath } = await startAgent(t, { novaPort: nova.port, resolver });
  assert.equal((await viaSocket(socketPath, { headers: H('10.0.0.5') })).status, 404);
  assert.equal(resolver.calls.length, 1);
});

test('socket: directory created, mode applied, stale socket replaced, a live agent or a file not clobbered', async (t) => {
  const nova = await startStubNova(t);
  const dir = tempDir(t);
  const path = join(dir, 'deep', 'er', 'metadata_proxy');
  const first = await startAgent(t, { novaPort: nova.port, socketPath: path });
  assert.equal(lstatSync(path).mode & 0o777, 0o644);
  await assert.rejects(
    startAgent(t, { novaPort: nova.port, socketPath: path }),
    /another process is listening/,
  );
  // Leave a stale socket behind the way a crash does: a listener killed with SIGKILL never unlinks.
  await first.agent.close(10);
  spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  assert.ok(lstatSync(path).isSocket(), 'stale socket exists');
  const second = await startAgent(t, { novaPort: nova.port, socketPath: path });
  assert.equal((await viaSocket(second.socketPath, { headers: H('10.0.0.5') })).status, 200);
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'precious');
  await assert.rejects(startAgent(t, { novaPort: nova.port, socketPath: file }), /not a socket; refusing/);
});

test('socket mode deduced as neutron does', () => {
  const me = { uid: 1000, gid: 1000, user: 'neutron', group: 'neutron' };
  assert.equal(socketModeFor('deduce', '', '', me), 0o644);
  assert.equal(socketModeFor('deduce', 'neutron', 'other', me), 0o644);
  assert.equal(socketModeFor('deduce', 'nobody', '', me), 0o664);
  assert.equal(socketModeFor('deduce', 'nobody', 'neutron', me), 0o664);
  assert.equal(socketModeFor('deduce', 'nobody', 'nogroup', me), 0o666);
  assert.equal(socketModeFor('user', 'nobody', 'nogroup', me), 0o644);
  assert.equal(socketModeFor('group', '', '', me), 0o664);
  assert.equal(socketModeFor('all', '', '', me), 0o666);
});
