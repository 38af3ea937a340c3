/*
 * Attack: open more connections than the proxy allows, to exhaust its memory or file descriptors. The
 * proxy holds at most maxConnections (across all its listeners); every connection beyond is closed at
 * once, without a byte read or written, and the refusals are logged a line per second at most, not a
 * line each. As soon as a slot frees, a normal client is served again.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { test } from 'node:test';
import { parseBind } from '@nmp/common';
import { until } from '@nmp/testkit';
import { MetadataProxy } from '../src/proxy.js';
import {
  assertAgentSawOnlyNormal,
  assertServed,
  captureLogs,
  holdConnection,
  hostileSetup,
  normalRequest,
  startFakeAgent,
} from './helpers.js';

/** Connect and report what happened: closed by the server (with how many bytes), or still open. */
function fate(port: number, host = '127.0.0.1', waitMs = 2000): Promise<{ closed: boolean; bytes: number }> {
  return new Promise((resolve) => {
    let bytes = 0;
    const socket = connect({ port, host });
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, bytes });
    }, waitMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, bytes });
    });
  });
}

const openFds = () => readdirSync('/proc/self/fd').length;

test('connections over the limit are closed at once; a freed slot serves a normal request', async (t) => {
  const LIMIT = 20;
  const { agent, port, proxy, logs } = await hostileSetup(t, {
    limits: { maxConnections: LIMIT, requestTimeoutMs: 10_000 },
  });
  const fdsBefore = openFds();
  const held = await Promise.all(Array.from({ length: LIMIT }, () => holdConnection(t, port)));
  await until('the proxy to hold LIMIT connections', () => proxy.connections === LIMIT, 2000);
  assert.equal(proxy.connections, LIMIT);

  // The flood: 200 more, all at once. Each is closed by the proxy, none gets an answer, none stays.
  const started = Date.now();
  const fates = await Promise.all(Array.from({ length: 200 }, () => fate(port)));
  assert.equal(fates.filter((f) => !f.closed).length, 0, 'a connection over the limit stayed open');
  assert.equal(fates.filter((f) => f.bytes > 0).length, 0, 'a refused connection got bytes');
  assert.ok(Date.now() - started < 2000, 'refusals were not immediate');
  assert.equal(proxy.connections, LIMIT);

  // Log: one line per second at most, the count in it.
  const lines = logs.lines().filter((l) => l.code === 'MDP_ERR_TOO_MANY_CONNECTIONS');
  assert.ok(lines.length >= 1 && lines.length <= 3, `${lines.length} log lines for 200 refusals`);
  assert.equal(lines[0]!.limit, LIMIT);
  assert.equal(lines[0]!.reason, 'connection-limit');

  // A slot frees: the next client is served while the other 19 are still held.
  held[0]!.socket.destroy();
  await until('the freed slot', () => proxy.connections === LIMIT - 1, 2000);
  assertServed(await normalRequest(port));
  assertAgentSawOnlyNormal(agent);

  for (const h of held) h.socket.destroy();
  await until('every connection closed', () => proxy.connections === 0, 2000);
  assert.equal(proxy.connections, 0);
  await until('the file descriptors to be released', () => openFds() <= fdsBefore + 2, 3000);
  assert.ok(openFds() <= fdsBefore + 2, `file descriptors: ${fdsBefore} before, ${openFds()} after`);
});

test('the limit holds across all listeners of one proxy', async (t) => {
  const agent = await startFakeAgent(t);
  const logs = captureLogs();
  const proxy = new MetadataProxy({
    identity: { mode: 'network', id: 'net-1' },
    binds: [parseBind('127.0.0.1:0'), parseBind('[::1]:0')],
    socketPath: agent.socketPath,
    logger: logs.logger,
    limits: { maxConnections: 10, requestTimeoutMs: 10_000 },
  });
  const [v4, v6] = await proxy.listen();
  t.after(() => proxy.close(100));
  const a = await Promise.all(Array.from({ length: 6 }, () => holdConnection(t, v4!.port)));
  await until('six connections on the IPv4 listener', () => proxy.connections === 6, 2000);
  const b = await Promise.all(Array.from({ length: 6 }, () => holdConnection(t, v6!.port, { host: '::1' })));
  await until(
    'two IPv6 connections refused (or the limit passed)',
    () => b.filter((c) => c.socket.destroyed).length === 2 || proxy.connections > 10,
    2000,
  );
  assert.equal(proxy.connections, 10);
  assert.equal(b.filter((c) => c.socket.destroyed).length, 2);
  assert.equal(a.filter((c) => c.socket.destroyed).length, 0);
  assert.ok(logs.lines().some((l) => l.code === 'MDP_ERR_TOO_MANY_CONNECTIONS'));
});
