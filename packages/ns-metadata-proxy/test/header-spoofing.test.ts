/*
 * Attack: an instance sends its own identity headers (any case, repeated) hoping the agent trusts them
 * (neutron bug 1865036). Every copy must be gone before the agent sees the request, and the proxy's own
 * values must be the only ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IDENTITY_HEADERS } from '@nmp/common';
import { agentRequestHeaders } from '../src/header-policy.js';
import { rawRequest, startFakeAgent, startProxy } from './helpers.js';

function variants(name: string): string[] {
  const title = name.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());
  return [name, name.toUpperCase(), title];
}

test('every spoofed identity header, in any case and repeated, is removed before the agent sees it', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, {
    socketPath: agent.socketPath,
    identity: { mode: 'network', id: 'net-good' },
  });
  const spoofed: string[] = [];
  for (const name of IDENTITY_HEADERS) {
    for (const v of variants(name)) spoofed.push(`${v}: evil-${v}`, `${v}: evil-again`);
  }
  const res = await rawRequest(
    port,
    `GET /openstack/latest/meta_data.json?x=1 HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: test\r\n${spoofed.join('\r\n')}\r\nConnection: close\r\n\r\n`,
  );
  assert.equal(res.status, 200);
  assert.equal(agent.seen.length, 1);
  const seen = agent.seen[0]!;
  assert.equal(seen.url, '/openstack/latest/meta_data.json?x=1');
  for (let i = 0; i < seen.rawHeaders.length; i += 2) {
    assert.ok(!seen.rawHeaders[i + 1]!.startsWith('evil'), `spoofed ${seen.rawHeaders[i]} reached the agent`);
  }
  const names = [];
  for (let i = 0; i < seen.rawHeaders.length; i += 2) names.push(seen.rawHeaders[i]!.toLowerCase());
  assert.equal(names.filter((n) => n === 'x-forwarded-for').length, 1);
  assert.equal(names.filter((n) => n === 'x-neutron-network-id').length, 1);
  assert.equal(names.filter((n) => n === 'x-neutron-router-id').length, 0);
  assert.equal(names.filter((n) => n === 'x-instance-id').length, 0);
  assert.equal(names.filter((n) => n === 'x-tenant-id').length, 0);
  assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(seen.headers['x-neutron-network-id'], 'net-good');
  assert.equal(seen.headers['user-agent'], 'test');
  assert.match(String(seen.headers['x-openstack-request-id']), /^req-[0-9a-f-]{36}$/);
});

test('router mode stamps only X-Neutron-Router-ID, and a client network id cannot ride along', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, {
    socketPath: agent.socketPath,
    identity: { mode: 'router', id: 'r-1' },
  });
  const res = await rawRequest(
    port,
    'GET / HTTP/1.1\r\nHost: x\r\nX-Neutron-Network-ID: other-net\r\nx-neutron-router-id: other-router\r\nConnection: close\r\n\r\n',
  );
  assert.equal(res.status, 200);
  const seen = agent.seen[0]!;
  assert.equal(seen.headers['x-neutron-router-id'], 'r-1');
  assert.equal(seen.headers['x-neutron-network-id'], undefined);
});

test("OVN mode stamps only X-OVN-Network-ID: the client copies neutron's OVN haproxy lets through are gone", async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, {
    socketPath: agent.socketPath,
    identity: { mode: 'ovn', id: 'net-ovn' },
  });
  const res = await rawRequest(
    port,
    'GET / HTTP/1.1\r\nHost: x\r\nX-OVN-Network-ID: evil\r\nx-ovn-network-id: evil-too\r\n' +
      'X-Neutron-Network-ID: other-net\r\nConnection: close\r\n\r\n',
  );
  assert.equal(res.status, 200);
  const seen = agent.seen[0]!;
  const names = [];
  for (let i = 0; i < seen.rawHeaders.length; i += 2) names.push(seen.rawHeaders[i]!.toLowerCase());
  assert.equal(names.filter((n) => n === 'x-ovn-network-id').length, 1);
  assert.equal(seen.headers['x-ovn-network-id'], 'net-ovn');
  assert.equal(seen.headers['x-neutron-network-id'], undefined);
  assert.equal(seen.headers['x-neutron-router-id'], undefined);
  assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
});

test('headers named in Connection and hop-by-hop headers are not forwarded', () => {
  const out = agentRequestHeaders(
    [
      'Host',
      'h',
      'Connection',
      'X-Secret-Hop, close',
      'X-Secret-Hop',
      '1',
      'Keep-Alive',
      'timeout=5',
      'TE',
      'trailers',
      'Accept',
      '*/*',
    ],
    { mode: 'network', id: 'n' },
    '10.0.0.5',
    'req-x',
  );
  const names = out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  assert.deepEqual(names, [
    'host',
    'accept',
    'x-forwarded-for',
    'x-neutron-network-id',
    'x-openstack-request-id',
  ]);
});

test('IPv6 and IPv4-mapped peers: X-Forwarded-For is unwrapped', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, { socketPath: agent.socketPath, bind: '[::]:0' });
  await rawRequest(port, 'GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { host: '127.0.0.1' });
  await rawRequest(port, 'GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { host: '::1' });
  assert.equal(agent.seen[0]!.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(agent.seen[1]!.headers['x-forwarded-for'], '::1');
});

test('the agent always gets a Host header and a Content-Length for a body the client sent chunked', () => {
  const identity = { mode: 'network', id: 'n' } as const;
  const names = (h: string[]) => h.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  // HTTP/1.0 without Host: the agent's HTTP/1.1 server would refuse the request without one.
  const noHost = agentRequestHeaders(['Accept', '*/*'], identity, '10.0.0.5', 'req-x');
  assert.deepEqual(noHost.slice(0, 4), ['Accept', '*/*', 'host', 'localhost']);
  // The client's Host is kept as it is and not doubled.
  const withHost = agentRequestHeaders(['HOST', '169.254.169.254'], identity, '10.0.0.5', 'req-x');
  assert.deepEqual(
    names(withHost).filter((n) => n === 'host'),
    ['host'],
  );
  assert.equal(withHost[1], '169.254.169.254');
  // A chunked body (Transfer-Encoding is hop-by-hop, dropped) gets the length of what was read.
  const body = Buffer.from('password-data');
  const chunked = agentRequestHeaders(
    ['Host', 'h', 'Transfer-Encoding', 'chunked'],
    identity,
    '10.0.0.5',
    'req-x',
    body,
  );
  assert.ok(!names(chunked).includes('transfer-encoding'));
  assert.equal(chunked[chunked.indexOf('content-length') + 1], String(body.length));
  // A body with its own Content-Length keeps that one only.
  const framed = agentRequestHeaders(
    ['Host', 'h', 'Content-Length', '13'],
    identity,
    '10.0.0.5',
    'req-x',
    body,
  );
  assert.deepEqual(
    names(framed).filter((n) => n === 'content-length'),
    ['content-length'],
  );
});

test('HTTP/1.0 without Host and a chunked POST both reach the agent intact', async (t) => {
  const agent = await startFakeAgent(t);
  const { port } = await startProxy(t, { socketPath: agent.socketPath });
  const old = await rawRequest(port, 'GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n');
  assert.equal(old.status, 200);
  assert.equal(agent.seen[0]!.headers.host, 'localhost');
  const chunked = await rawRequest(
    port,
    'POST /openstack/2013-04-04/password HTTP/1.1\r\nHost: 169.254.169.254\r\nTransfer-Encoding: chunked\r\n' +
      'Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
  );
  assert.equal(chunked.status, 200);
  const seen = agent.seen[1]!;
  assert.equal(seen.method, 'POST');
  assert.equal(seen.body.toString(), 'hello world');
  assert.equal(seen.headers['content-length'], '11');
  assert.equal(seen.headers['transfer-encoding'], undefined);
  assert.equal(seen.headers.host, '169.254.169.254');
});
