/* Listening sockets of a process read from /proc (used by `status` for health). */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { decodeProcAddress, formatSocket, listeningSockets, parseProcNetTcp } from '../src/proc-sockets.js';

test('decodes /proc/net/tcp{,6} addresses', () => {
  assert.equal(decodeProcAddress('0100007F'), '127.0.0.1');
  assert.equal(decodeProcAddress('FEA9FEA9'), '169.254.169.254');
  assert.equal(decodeProcAddress('00000000'), '0.0.0.0');
  assert.equal(decodeProcAddress('00000000000000000000000000000000'), '::');
  assert.equal(decodeProcAddress('00000000000000000000000001000000'), '::1');
  assert.equal(decodeProcAddress('000080FE0000000000000000FEA9FEA9'), 'fe80::a9fe:a9fe');
  assert.equal(decodeProcAddress('0000000000000000FFFF00000100007F'), '::ffff:127.0.0.1');
});

test('parses LISTEN rows only', () => {
  const text =
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n' +
    '   0: FEA9FEA9:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n' +
    '   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n';
  const m = parseProcNetTcp(text, 4);
  assert.deepEqual([...m.entries()], [['4242', { address: '169.254.169.254', port: 80, family: 4 }]]);
  assert.equal(formatSocket(m.get('4242')!), '169.254.169.254:80');
  assert.equal(formatSocket({ address: 'fe80::a9fe:a9fe', port: 80 }), '[fe80::a9fe:a9fe]:80');
});

test("finds this process's own listeners", async (t) => {
  const servers: Server[] = [];
  t.after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));
  const listen = (host: string) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer();
      servers.push(s);
      s.once('error', reject);
      s.listen({ host, port: 0 }, () => resolve((s.address() as { port: number }).port));
    });
  const p4 = await listen('127.0.0.1');
  const p6 = await listen('::1').catch(() => undefined);
  const mine = listeningSockets(process.pid).map(formatSocket);
  assert.ok(mine.includes(`127.0.0.1:${p4}`), mine.join(' '));
  if (p6 !== undefined) assert.ok(mine.includes(`[::1]:${p6}`), mine.join(' '));
  assert.deepEqual(listeningSockets(2 ** 22 + 7), []);
});
