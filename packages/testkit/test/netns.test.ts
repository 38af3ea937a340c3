/*
 * The namespace harness itself: namespaces, veths, addresses, a server spawned in one namespace reached
 * from another over IPv4 and IPv6 link-local, and cleanup that leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  HttpGetError,
  isProcessAlive,
  NetnsLab,
  requireRoot,
  rootSkipReason,
  runCommand,
  uniquePrefix,
} from '../src/netns.js';

const SERVER = `
const http = require('node:http');
const [host, port] = [process.argv[1], Number(process.argv[2])];
http.createServer((req, res) => { res.setHeader('x-peer', req.socket.remoteAddress); res.end('hello ' + req.url); })
  .listen({ host, port }, () => console.log('listening'));
`;

test('rootSkipReason honours NMP_SKIP_ROOT_TESTS', () => {
  const saved = process.env.NMP_SKIP_ROOT_TESTS;
  process.env.NMP_SKIP_ROOT_TESTS = '1';
  try {
    assert.match(rootSkipReason() ?? '', /NMP_SKIP_ROOT_TESTS/);
  } finally {
    if (saved === undefined) delete process.env.NMP_SKIP_ROOT_TESTS;
    else process.env.NMP_SKIP_ROOT_TESTS = saved;
  }
});

test('uniquePrefix and device names stay within limits', () => {
  const p = uniquePrefix();
  assert.match(p, /^mdt[0-9a-f]{4}$/);
  const lab = new NetnsLab({ prefix: p });
  assert.equal(lab.devName('12345678').length, 15);
  assert.throws(() => lab.devName('123456789'), /longer than 15/);
  assert.throws(() => new NetnsLab({ prefix: 'Bad-prefix' }), /prefix/);
});

test('two namespaces over a veth: IPv4 and IPv6 link-local HTTP, then full cleanup', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const srv = await lab.addNamespace('srv');
  const cli = await lab.addNamespace('cli');
  const { dev1, dev2 } = await lab.addVethPair(srv, cli, { mac2: 'fa:16:3e:12:34:56' });
  assert.match((await lab.ip(cli, ['link', 'show', dev2])).stdout, /link\/ether fa:16:3e:12:34:56/);
  await lab.addAddress(srv, dev1, '10.201.0.1/24');
  await lab.addAddress(cli, dev2, '10.201.0.7/24');
  await lab.addAddress(srv, dev1, 'fe80::a9fe:a9fe/64');
  assert.deepEqual(await lab.waitForDad(srv, dev1), []);
  await lab.waitForDad(cli, dev2);

  const v4 = lab.spawn(srv, process.execPath, ['-e', SERVER, '10.201.0.1', '8080']);
  await v4.waitForOutput(/listening/);
  const v6 = lab.spawn(srv, process.execPath, ['-e', SERVER, `fe80::a9fe:a9fe%${dev1}`, '8081']);
  await v6.waitForOutput(/listening/);
  assert.equal((await lab.waitForListen(srv, 8080)).length, 1);

  const r4 = await lab.httpGet(cli, 'http://10.201.0.1:8080/a?b=1');
  assert.equal(r4.status, 200);
  assert.equal(r4.text, 'hello /a?b=1');
  assert.equal(r4.headers['x-peer'], '10.201.0.7');

  const r6 = await lab.httpGet(cli, { host: `fe80::a9fe:a9fe%${dev2}`, port: 8081, path: '/six' });
  assert.equal(r6.text, 'hello /six');
  // The client's link-local address follows the MAC it was given (EUI-64).
  assert.match(String(r6.headers['x-peer']), /^fe80::f816:3eff:fe12:3456(%|$)/);

  // Nothing of this exists in the root namespace.
  const rootLinks = await runCommand(undefined, 'ip', ['-o', 'link', 'show']);
  assert.doesNotMatch(rootLinks.stdout, new RegExp(lab.prefix));
  // No route from the client to an address it cannot reach: a refused/unreachable error, not a hang.
  await assert.rejects(lab.httpGet(cli, 'http://10.201.0.1:9/', { timeoutMs: 3000 }), HttpGetError);

  const pids = [v4.pid, v6.pid];
  await lab.cleanup();
  const list = await runCommand(undefined, 'ip', ['netns', 'list']);
  assert.doesNotMatch(list.stdout, new RegExp(lab.prefix));
  for (const pid of pids) assert.equal(isProcessAlive(pid), false);
});

test('a bridge joins several namespaces on one segment', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const sw = await lab.addNamespace('sw');
  const br = await lab.addBridge(sw, 'br');
  const hosts: string[] = [];
  for (const n of [1, 2, 3]) {
    const h = await lab.addNamespace(`h${n}`);
    const { dev1, dev2 } = await lab.addVethPair(sw, h);
    await lab.attachToBridge(sw, dev1, br);
    await lab.addAddress(h, dev2, `10.202.0.${n}/24`);
    hosts.push(h);
  }
  const server = lab.spawn(hosts[2], process.execPath, ['-e', SERVER, '10.202.0.3', '8080']);
  await server.waitForOutput(/listening/);
  for (const [i, h] of hosts.slice(0, 2).entries()) {
    const r = await lab.httpGet(h, 'http://10.202.0.3:8080/');
    assert.equal(r.headers['x-peer'], `10.202.0.${i + 1}`);
  }
});

test('cleanup also kills processes nobody tracked and runs deferred callbacks', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const ns = await lab.addNamespace('x');
  // A detached grandchild the lab does not know about.
  await lab.exec(ns, 'sh', ['-c', 'sleep 300 >/dev/null 2>&1 &']);
  const pids = await lab.pidsIn(ns);
  assert.equal(pids.length, 1);
  assert.equal(isProcessAlive(pids[0]!), true);
  let deferredRan = false;
  lab.defer(() => {
    deferredRan = true;
  });
  await lab.cleanup();
  assert.equal(deferredRan, true);
  assert.equal(isProcessAlive(pids[0]!), false);
  const list = await runCommand(undefined, 'ip', ['netns', 'list']);
  assert.doesNotMatch(list.stdout, new RegExp(lab.prefix));
});
