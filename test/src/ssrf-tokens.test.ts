/*
 * Attack: a web application in the guest is tricked into fetching http://169.254.169.254/... for an
 * attacker (server-side request forgery) and hands over user data and keys. The defences of issue 9
 * (docs/security.md), mode by mode, with plain HTTP through the whole chain (proxy -> agent -> Nova):
 * session tokens off / optional / required, token requests through a proxy in the guest, the required
 * header, refusal of forwarded requests, and path lists. Refused requests never reach Nova.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
// Not exported from the packages' indexes yet (the lead adds them there).
import { TOKEN_ANSWER_MARK } from '@nmp/metadata-hooks';
import { TOKEN_TTL_HEADER } from '@nmp/ns-metadata-proxy';
import { fetchFrom, INSTANCE_A, ROUTER, startChain } from './chain-harness.js';
import { rawExchange, requestLines, startSsrfProxy } from './ssrf-harness.js';

const TOKEN_RE = /^[A-Za-z0-9_-]{55}$/;

async function getToken(port: number, ttl = '60', source = '127.0.0.1'): Promise<string> {
  const r = await fetchFrom(port, '/latest/api/token', {
    method: 'PUT',
    source,
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': ttl },
  });
  assert.equal(r.status, 200, r.body.toString());
  const token = r.body.toString();
  assert.match(token, TOKEN_RE);
  return token;
}

function uuidOf(body: Buffer): string {
  return (JSON.parse(body.toString()) as { uuid: string }).uuid;
}

test('the hop-limit rule looks for the header the token answer starts with', () => {
  assert.equal(TOKEN_ANSWER_MARK, TOKEN_TTL_HEADER);
});

test('off: the token endpoint is Nova’s (404), token headers are ignored, nothing is refused', async (t) => {
  const chain = await startChain(t);
  const { port, logs } = await startSsrfProxy(t, chain, {});
  const put = await fetchFrom(port, '/latest/api/token', {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
  });
  assert.equal(put.status, 404);
  const get = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'X-aws-ec2-metadata-token': 'not-a-token', 'X-Forwarded-For': '10.1.1.1' },
  });
  assert.equal(get.status, 200);
  assert.equal(uuidOf(get.body), INSTANCE_A);
  assert.equal(chain.novaSeen.length, 2);
  assert.ok(requestLines(logs).every((l) => l.code === undefined));
});

test('required: the token exchange on the wire, byte for byte in its head', async (t) => {
  const chain = await startChain(t);
  const { port } = await startSsrfProxy(t, chain, { tokenMode: 'required' });
  const r = await rawExchange(
    port,
    'PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nConnection: close\r\n\r\n',
  );
  assert.equal(r.status, 200, r.head);
  // The TTL header comes first: the hop-limit rule finds it at the start of the answer's first segment.
  assert.match(r.head, /^HTTP\/1\.1 200 OK\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n/);
  assert.match(r.head, /\r\nContent-Type: text\/plain\r\n/);
  assert.match(r.head, /\r\nCache-Control: no-store\r\n/);
  assert.match(r.body, TOKEN_RE);
  assert.equal(chain.novaSeen.length, 0, 'the token is the proxy’s own answer');

  const ok = await rawExchange(
    port,
    `GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: ${r.body}\r\nConnection: close\r\n\r\n`,
  );
  assert.equal(ok.status, 200, ok.head);
  assert.match(ok.body, /^i-[0-9a-f]{8}$/);
});

test('required: no token, a bad one, one of another instance, or an expired one is 401', async (t) => {
  const chain = await startChain(t);
  const clock = { now: Date.now() };
  const { port, logs } = await startSsrfProxy(t, chain, { tokenMode: 'required' }, { now: () => clock.now });

  const none = await fetchFrom(port, '/openstack/latest/meta_data.json');
  assert.equal(none.status, 401);
  assert.equal(none.headers['content-type'], 'text/plain; charset=UTF-8');
  assert.match(none.body.toString(), /^A session token is required: PUT \/latest\/api\/token .*\n$/);

  const token = await getToken(port, '30');
  const good = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'X-aws-ec2-metadata-token': token },
  });
  assert.equal(good.status, 200);
  assert.equal(uuidOf(good.body), INSTANCE_A);

  const bad = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    // Two characters changed (never the token itself, whatever it ends with).
    headers: { 'X-aws-ec2-metadata-token': `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}` },
  });
  assert.equal(bad.status, 401);
  assert.equal(bad.body.toString(), 'The session token is not valid.\n');

  // Instance B replays instance A's token: bound to A's address.
  const stolen = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    source: '127.0.0.2',
    headers: { 'X-aws-ec2-metadata-token': token },
  });
  assert.equal(stolen.status, 401);

  clock.now += 30_000;
  const expired = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'X-aws-ec2-metadata-token': token },
  });
  assert.equal(expired.status, 401);
  assert.equal(expired.body.toString(), 'The session token has expired.\n');

  assert.equal(chain.novaSeen.length, 1, 'only the request with a valid token reached Nova');
  const refused = requestLines(logs)
    .filter((l) => l.status === 401)
    .map((l) => [l.code, l.reason]);
  assert.deepEqual(refused, [
    ['MDP_ERR_TOKEN_MISSING', 'token_missing'],
    ['MDP_ERR_TOKEN_INVALID', 'token_invalid'],
    ['MDP_ERR_TOKEN_INVALID', 'token_invalid'],
    ['MDP_ERR_TOKEN_EXPIRED', 'token_expired'],
  ]);
  assert.ok(!logs.text().includes(token), 'a token never reaches the log');
});

test('a token of one proxy is refused by the proxy of another network or router', async (t) => {
  const chain = await startChain(t);
  const key = Buffer.alloc(32, 7);
  const net = await startSsrfProxy(t, chain, { tokenMode: 'required' }, { key });
  const rtr = await startSsrfProxy(
    t,
    chain,
    { tokenMode: 'required' },
    { key, identity: { mode: 'router', id: ROUTER } },
  );
  const token = await getToken(net.port);
  const r = await fetchFrom(rtr.port, '/latest/meta-data/instance-id', {
    headers: { 'X-aws-ec2-metadata-token': token },
  });
  assert.equal(r.status, 401);
  const own = await getToken(rtr.port);
  const ok = await fetchFrom(rtr.port, '/latest/meta-data/instance-id', {
    headers: { 'X-aws-ec2-metadata-token': own },
  });
  assert.equal(ok.status, 200);
});

test('token requests: a bad TTL is 400, one through a proxy in the guest is 403', async (t) => {
  const chain = await startChain(t);
  const { port, logs } = await startSsrfProxy(t, chain, { tokenMode: 'optional', tokenMaxTtl: 600 });
  for (const ttl of [undefined, '0', '21601', 'abc']) {
    const r = await fetchFrom(port, '/latest/api/token', {
      method: 'PUT',
      headers: ttl === undefined ? {} : { 'X-aws-ec2-metadata-token-ttl-seconds': ttl },
    });
    assert.equal(r.status, 400, `ttl ${ttl}`);
  }
  const proxied = await fetchFrom(port, '/latest/api/token', {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60', 'X-Forwarded-For': '172.17.0.2' },
  });
  assert.equal(proxied.status, 403);
  assert.equal(proxied.body.toString(), 'Forwarded requests are not accepted.\n');
  // Clamped to token_max_ttl, and the answer says so.
  const clamped = await fetchFrom(port, '/latest/api/token', {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '21600' },
  });
  assert.equal(clamped.status, 200);
  assert.equal(clamped.headers['x-aws-ec2-metadata-token-ttl-seconds'], '600');
  assert.equal(chain.novaSeen.length, 0);
  assert.deepEqual(
    requestLines(logs).map((l) => l.reason ?? null),
    [
      'token_ttl_invalid',
      'token_ttl_invalid',
      'token_ttl_invalid',
      'token_ttl_invalid',
      'forwarded_for',
      null,
    ],
  );
});

test('a token request with a body is answered and the connection closed', async (t) => {
  const chain = await startChain(t);
  const { port } = await startSsrfProxy(t, chain, { tokenMode: 'optional' });
  const r = await rawExchange(
    port,
    'PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 5\r\nContent-Length: 4\r\n\r\nabcdGET /openstack HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  assert.equal(r.status, 200);
  // Either the body was read and the next request answered, or the connection closed after the
  // token: never is the body taken for a request.
  assert.ok(!/HTTP\/1\.1 400/.test(r.body), r.body);
});

test('optional: requests without a token pass, with a valid one pass, with a bad one are 401', async (t) => {
  const chain = await startChain(t);
  const { port, policy } = await startSsrfProxy(t, chain, { tokenMode: 'optional' });
  const plain = await fetchFrom(port, '/openstack/latest/meta_data.json');
  assert.equal(plain.status, 200);
  const token = await getToken(port);
  const withToken = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'X-aws-ec2-metadata-token': token },
  });
  assert.equal(withToken.status, 200);
  const bad = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'X-aws-ec2-metadata-token': 'x' },
  });
  assert.equal(bad.status, 401);
  // What an operator watches before switching to required: requests that came without a token.
  assert.deepEqual(policy.counts, { tokensIssued: 1, withToken: 1, withoutToken: 1 });
});

test('required header: 403 without it or with another value, forwarded with it', async (t) => {
  const chain = await startChain(t);
  const { port, logs } = await startSsrfProxy(t, chain, {
    requiredHeader: { name: 'metadata-flavor', value: 'OpenStack' },
  });
  const without = await fetchFrom(port, '/openstack/latest/meta_data.json');
  assert.equal(without.status, 403);
  assert.equal(without.body.toString(), 'A required request header is missing or wrong.\n');
  const wrong = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'Metadata-Flavor': 'Google' },
  });
  assert.equal(wrong.status, 403);
  const ok = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'Metadata-Flavor': 'OpenStack' },
  });
  assert.equal(ok.status, 200);
  assert.equal(uuidOf(ok.body), INSTANCE_A);
  assert.equal(chain.novaSeen.length, 1);
  assert.deepEqual(
    requestLines(logs).map((l) => [l.status, l.code ?? null, l.reason ?? null]),
    [
      [403, 'MDP_ERR_HEADER_MISSING', 'header_missing'],
      [403, 'MDP_ERR_HEADER_MISSING', 'header_missing'],
      [200, null, null],
    ],
  );
});

test('refuse_forwarded_for: a request relayed by a proxy in the guest is 403', async (t) => {
  const chain = await startChain(t);
  const { port } = await startSsrfProxy(t, chain, { refuseForwardedFor: true });
  const relayed: Array<Record<string, string>> = [
    { 'X-Forwarded-For': '172.17.0.2' },
    { Forwarded: 'for=172.17.0.2' },
  ];
  for (const headers of relayed) {
    const r = await fetchFrom(port, '/openstack/latest/meta_data.json', { headers });
    assert.equal(r.status, 403, JSON.stringify(headers));
  }
  assert.equal((await fetchFrom(port, '/openstack/latest/meta_data.json')).status, 200);
  assert.equal(chain.novaSeen.length, 1);
});

test('path lists: user data and password denied however spelled, the rest allowed', async (t) => {
  const chain = await startChain(t);
  const { port } = await startSsrfProxy(t, chain, {
    pathAllow: ['/openstack', '/latest/meta-data'],
    pathDeny: ['/openstack/*/user_data', '/**/password'],
  });
  for (const path of [
    '/openstack/latest/user_data',
    '/openstack/2018-08-27/user_data',
    '/openstack//latest/user_data',
    '/openstack/latest/%75ser_data',
    '/openstack/latest/password',
    '/openstack/latest/../../latest/user-data',
    '/openstack/%2e%2e/latest/user-data',
    '/latest/user-data',
  ]) {
    const r = await fetchFrom(port, path);
    assert.equal(r.status, 403, path);
    assert.equal(r.body.toString(), 'Access to this path is not allowed.\n');
  }
  assert.equal(chain.novaSeen.length, 0);
  assert.equal((await fetchFrom(port, '/openstack/latest/meta_data.json')).status, 200);
  assert.equal((await fetchFrom(port, '/latest/meta-data/instance-id')).status, 200);
});
