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
