/*
 * A broken or hostile database server must not crash the client or corrupt its replica. A scripted server
 * on a UNIX socket speaks just enough OVSDB to get a monitor going, then sends what a real server never
 * would: garbage bytes, oversized and deeply nested messages, values of the wrong type, updates for rows,
 * tables and monitors that do not exist, a modify of a row the replica lacks, responses to ids never used.
 * The client drops what it cannot use, reconnects when the stream is unusable, and reloads a replica that
 * diverged. The server's own echo requests are answered.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sleep, until } from '@nmp/testkit';
import { OvsdbClient } from '../src/client.js';
import { JsonObjectFramer } from '../src/json-stream.js';

const SCHEMA = {
  name: 'Toy',
  version: '1.0.0',
  tables: {
    Item: {
      columns: {
        name: { type: 'string' },
        count: { type: 'integer' },
        tags: { type: { key: 'string', value: 'string', min: 0, max: 'unlimited' } },
      },
    },
  },
};

const U = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

type Handler = (
  socket: Socket,
  msg: { method?: string; params?: unknown[]; id?: unknown; result?: unknown },
) => void;

interface Fake {
  readonly path: string;
  readonly server: Server;
  connections: number;
  readonly sockets: Socket[];
  readonly received: unknown[];
}

async function fakeServer(
  t: { after(fn: () => unknown): void },
  onMessage: Handler,
  onConnect?: (s: Socket) => void,
): Promise<Fake> {
  const dir = mkdtempSync(join(tmpdir(), 'nmp-fake-ovsdb-'));
  const path = join(dir, 'db.sock');
  const fake: Fake = { path, server: createServer(), connections: 0, sockets: [], received: [] };
  fake.server.on('connection', (socket) => {
    fake.connections++;
    fake.sockets.push(socket);
    socket.on('error', () => {});
    const framer = new JsonObjectFramer({ maxMessageBytes: 1 << 20 });
    socket.on('data', (chunk) => {
      for (const m of framer.push(chunk)) {
        fake.received.push(m);
        onMessage(socket, m as Parameters<Handler>[1]);
      }
    });
    onConnect?.(socket);
  });
  await new Promise<void>((resolve) => fake.server.listen(path, resolve));
  t.after(async () => {
    for (const s of fake.sockets) s.destroy();
    await new Promise<void>((resolve) => fake.server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  return fake;
}

const reply = (s: Socket, id: unknown, result: unknown) =>
  s.write(JSON.stringify({ id, result, error: null }));
const fail = (s: Socket, id: unknown, error: string) =>
  s.write(JSON.stringify({ id, result: null, error: { error } }));

/** Answers the handshake: no _Server, the toy schema, monitor_cond_since with `rows`. */
function handshake(rows: () => Record<string, unknown>): Handler {
  return (s, m) => {
    if (m.method === 'monitor_cond' && m.params?.[0] === '_Server') fail(s, m.id, 'unknown database');
    else if (m.method === 'get_schema') reply(s, m.id, SCHEMA);
    else if (m.method === 'monitor_cond_since') reply(s, m.id, [false, U(999), { Item: rows() }]);
    else if (m.method === 'echo') reply(s, m.id, m.params);
  };
}

test('garbage instead of JSON-RPC: the session is dropped and the client retries, without crashing', async (t) => {
  const fake = await fakeServer(
    t,
    () => {},
    (s) => s.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'),
  );
  const c = new OvsdbClient({
    remotes: `unix:${fake.path}`,
    database: 'Toy',
    backoffMinMs: 20,
    backoffMaxMs: 50,
  });
  c.start();
  t.after(() => c.close());
  await until('several attempts', () => fake.connections >= 3, 5_000);
  assert.equal(c.connected, false);
  assert.match(c.stats.lastError ?? '', /expected a JSON object/);
});

test('an oversized or too deeply nested message ends the session, not the process', async (t) => {
  let n = 0;
  const fake = await fakeServer(t, (s, m) => {
    if (m.method !== 'monitor_cond') return;
    n++;
    if (n === 1) s.write(`{"id":${m.id},"result":"${'x'.repeat(200_000)}`);
    else s.write(`{"id":${m.id},"result":${'['.repeat(10_000)}`);
  });
  const c = new OvsdbClient({
    remotes: `unix:${fake.path}`,
    database: 'Toy',
    maxMessageBytes: 64 * 1024,
    backoffMinMs: 20,
    backoffMaxMs: 50,
  });
  c.start();
  t.after(() => c.close());
  await until(
    'two sessions',
    () => n >= 2 && !c.connected && /nested deeper/.test(c.stats.lastError ?? ''),
    5_000,
  );
});

test("the server's echo is answered; its other requests get an error; strange responses are dropped", async (t) => {
  const answers: unknown[] = [];
  const fake = await fakeServer(t, (s, m) => {
    if (m.method === undefined) answers.push(m);
    handshake(() => ({}))(s, m);
    if (m.method === 'monitor_cond_since') {
      s.write(JSON.stringify({ method: 'echo', params: ['ping', 1], id: 'echo' }));
      s.write(JSON.stringify({ method: 'steal', params: ['lock'], id: 77 }));
      s.write(JSON.stringify({ id: 12345, result: {}, error: null }));
      s.write(JSON.stringify({ result: 1 }));
      s.write(JSON.stringify({ method: 'update2', params: 'not an array', id: null }));
    }
  });
  const c = new OvsdbClient({ remotes: `unix:${fake.path}`, database: 'Toy' });
  c.start();
  t.after(() => c.close());
  c.monitor({ Item: {} });
  await c.ready(5_000);
  await until('two answers', () => answers.length >= 2, 5_000);
  assert.deepEqual(answers[0], { result: ['ping', 1], error: null, id: 'echo' });
  assert.deepEqual((answers[1] as { id: number; error: { error: string } }).id, 77);
  assert.equal((answers[1] as { error: { error: string } }).error.error, 'unknown method');
  await sleep(50);
  assert.equal(c.connected, true, 'junk responses do not end the session');
  assert.equal(fake.connections, 1);
});

test('hostile updates: bad values are dropped, unknown rows and tables ignored, a diverged replica reloaded', async (t) => {
  let snapshot: Record<string, unknown> = {
    [U(1)]: { initial: { name: 'one', count: 1, tags: ['map', [['a', '1']]] } },
    [U(2)]: { initial: { name: 'two', count: 2 } },
  };
  let socket: Socket | undefined;
  const fake = await fakeServer(t, (s, m) => {
    socket = s;
    handshake(() => snapshot)(s, m);
  });
  const problems: string[] = [];
  const c = new OvsdbClient({
    remotes: `unix:${fake.path}`,
    database: 'Toy',
    backoffMinMs: 20,
    backoffMaxMs: 50,
  });
  c.start();
  t.after(() => c.close());
  const replica = c.monitor({ Item: {} });
  replica.onProblem((p) => problems.push(p.code));
  await c.ready(5_000);
  assert.equal(replica.table('Item').size, 2);
  const send = (params: unknown) => socket!.write(JSON.stringify({ method: 'update3', params, id: null }));
  const m = (c.stats as unknown as { monitorMethod: string }).monitorMethod;
  assert.equal(m, 'monitor_cond_since');
  // The monitor id the client chose is in what it sent.
  const id = (
    fake.received.find((x) => (x as { method?: string }).method === 'monitor_cond_since') as {
      params: unknown[];
    }
  ).params[1];

  send([id, U(1000), { Item: { [U(1)]: { modify: { count: 'eleven', name: 'one!' } } } }]);
  send([
    id,
    U(1001),
    { Item: { 'not-a-uuid': { insert: { name: 'x' } }, [U(3)]: 'nope', [U(4)]: { frobnicate: {} } } },
  ]);
  send([id, U(1002), { Nope: { [U(5)]: { insert: { name: 'x' } } }, Item: [] }]);
  send(['some-other-monitor', U(1003), { Item: { [U(6)]: { insert: { name: 'six' } } } }]);
  send([id, U(1004), { Item: { [U(7)]: { insert: { name: 7, count: 7, tags: { a: 1 } } } } }]);
  await until('the bad updates to be processed', () => problems.length >= 5, 5_000);
  const one = replica.table('Item').get(U(1))!;
  assert.equal(one.name, 'one!', 'the good column of a modify applies');
  assert.equal(one.count, 1, 'the bad one keeps its value');
  assert.deepEqual([...replica.table('Item').keys()].sort(), [U(1), U(2), U(7)]);
  const seven = replica.table('Item').get(U(7))!;
  assert.deepEqual([seven.name, seven.count], ['', 7], 'wrong-typed values fall back to the default');
  assert.ok(replica.dataErrors >= 3);
  assert.equal(c.connected, true);
  assert.equal(fake.connections, 1);

  // A modify of a row the replica does not have: the copy diverged. The client reloads it whole.
  snapshot = {
    [U(2)]: { initial: { name: 'two', count: 22 } },
    [U(8)]: { initial: { name: 'eight', count: 8 } },
  };
  send([id, U(1005), { Item: { [U(404)]: { modify: { count: 4 } } } }]);
  await until(
    'the reload',
    () => fake.connections === 2 && c.connected && replica.table('Item').has(U(8)),
    5_000,
  );
  assert.deepEqual([...replica.table('Item').keys()].sort(), [U(2), U(8)]);
  assert.equal(replica.table('Item').get(U(2))!.count, 22);
  assert.ok(problems.includes('OVSDB_REPLICA_DIVERGED'));
  const second = fake.received
    .filter((x) => (x as { method?: string }).method === 'monitor_cond_since')
    .at(-1) as {
    params: unknown[];
  };
  assert.equal(
    second.params[3],
    '00000000-0000-0000-0000-000000000000',
    'a diverged copy asks for everything',
  );
});
