/*
 * The SSRF policy's decisions, mode by mode, without sockets: token issue and check (off, optional,
 * required), forwarded requests, the required header, path lists, and the order in which they apply.
 * Every refusal has its status, code and reason label; tokens never appear in log details.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TOKEN_HEADERS } from '../src/header-names.js';
import type { SsrfSettings } from '../src/ssrf/options.js';
import {
  SSRF_ERRORS,
  SSRF_REASON_CODES,
  SSRF_REFUSAL_REASONS,
  type SsrfAnswer,
  type SsrfDecision,
  SsrfPolicy,
  type SsrfRefusal,
  ssrfReasonForCode,
} from '../src/ssrf/policy.js';
import { generateNodeKey, SessionTokens } from '../src/ssrf/session-token.js';

const NET = { mode: 'network', id: 'net-1' } as const;
const SRC = '10.0.0.5';

const OFF: SsrfSettings = {
  tokenMode: 'off',
  tokenMaxTtl: 21600,
  tokenKeyFile: '',
  requiredHeader: undefined,
  refuseForwardedFor: false,
  pathAllow: [],
  pathDeny: [],
};

function policy(s: Partial<SsrfSettings>, now?: { now: number }) {
  const settings = { ...OFF, ...s };
  const tokens =
    settings.tokenMode === 'off'
      ? undefined
      : new SessionTokens(generateNodeKey(), () => now?.now ?? Date.now());
  return new SsrfPolicy({ settings, ...(tokens ? { tokens } : {}) });
}

function h(...pairs: string[]): string[] {
  return pairs;
}

function refused(d: SsrfDecision, reason: string, status: number): SsrfRefusal {
  assert.equal(d.kind, 'refuse', JSON.stringify(d));
  const r = d as SsrfRefusal;
  assert.equal(r.reason, reason);
  assert.equal(r.status, status);
  assert.equal(r.code, SSRF_REASON_CODES[r.reason]);
  assert.equal(r.message, SSRF_ERRORS[r.code].message);
  assert.equal(r.details.reason, reason);
  return r;
}

function tokenFrom(p: SsrfPolicy, ttl = '60', source = SRC, identity = NET): string {
  const d = p.decide(
    'PUT',
    '/latest/api/token',
    h('X-aws-ec2-metadata-token-ttl-seconds', ttl),
    source,
    identity,
  );
  assert.equal(d.kind, 'answer', JSON.stringify(d));
  return (d as SsrfAnswer).body;
}

test('reason labels, codes and statuses are one table', () => {
  assert.deepEqual([...SSRF_REFUSAL_REASONS].sort(), [
    'forwarded_for',
    'header_missing',
    'path_denied',
    'token_expired',
    'token_invalid',
    'token_missing',
    'token_ttl_invalid',
  ]);
  assert.deepEqual(new Set(Object.values(SSRF_REASON_CODES)).size, SSRF_REFUSAL_REASONS.length);
  for (const code of Object.keys(SSRF_ERRORS)) assert.match(code, /^MDP_ERR_[A-Z_]+$/);
  for (const reason of SSRF_REFUSAL_REASONS)
    assert.equal(ssrfReasonForCode(SSRF_REASON_CODES[reason]), reason);
  assert.equal(ssrfReasonForCode('MDP_ERR_RATE_LIMITED'), undefined);
  assert.equal(ssrfReasonForCode(undefined), undefined);
  assert.deepEqual([...TOKEN_HEADERS], ['x-aws-ec2-metadata-token', 'x-aws-ec2-metadata-token-ttl-seconds']);
});

test('off: every request is forwarded, the token endpoint included, token headers or not', () => {
  const p = policy({});
  for (const [m, u, hs] of [
    ['PUT', '/latest/api/token', h('X-aws-ec2-metadata-token-ttl-seconds', '60')],
    ['GET', '/latest/meta-data/', h('X-aws-ec2-metadata-token', 'junk')],
    ['GET', '/openstack', h('X-Forwarded-For', '1.2.3.4')],
  ] as const) {
    assert.deepEqual(p.decide(m, u, hs, SRC, NET), { kind: 'forward', token: 'off' });
  }
});

test('token PUT: 200 with the token, the TTL echoed first, text/plain, no-store', () => {
  const p = policy({ tokenMode: 'optional' });
  const d = p.decide(
    'PUT',
    '/latest/api/token',
    h('Host', '169.254.169.254', 'x-aws-ec2-metadata-token-ttl-seconds', '21600'),
    SRC,
    NET,
  );
  assert.equal(d.kind, 'answer');
  const a = d as SsrfAnswer;
  assert.equal(a.status, 200);
  assert.deepEqual(Object.keys(a.headers), [
    'X-aws-ec2-metadata-token-ttl-seconds',
    'Content-Type',
    'Content-Length',
    'Cache-Control',
  ]);
  assert.equal(a.headers['X-aws-ec2-metadata-token-ttl-seconds'], '21600');
  assert.equal(a.headers['Content-Type'], 'text/plain');
  assert.equal(a.headers['Content-Length'], a.body.length);
  assert.equal(a.headers['Cache-Control'], 'no-store');
  assert.match(a.body, /^[A-Za-z0-9_-]{55}$/);
  assert.equal(p.counts.tokensIssued, 1);
  // A query string does not hide the endpoint.
  assert.equal(
    p.decide('PUT', '/latest/api/token?x=1', h('X-aws-ec2-metadata-token-ttl-seconds', '5'), SRC, NET).kind,
    'answer',
  );
});

test('token PUT: the TTL is clamped to token_max_ttl, and the answer says so', () => {
  const p = policy({ tokenMode: 'required', tokenMaxTtl: 300 });
  const d = p.decide(
    'PUT',
    '/latest/api/token',
    h('X-aws-ec2-metadata-token-ttl-seconds', '21600'),
    SRC,
    NET,
  );
  assert.equal((d as SsrfAnswer).headers['X-aws-ec2-metadata-token-ttl-seconds'], '300');
  const d2 = p.decide('PUT', '/latest/api/token', h('X-aws-ec2-metadata-token-ttl-seconds', '1'), SRC, NET);
  assert.equal((d2 as SsrfAnswer).headers['X-aws-ec2-metadata-token-ttl-seconds'], '1');
});

test('token PUT: a missing, invalid, out-of-range or repeated TTL is 400', () => {
  const p = policy({ tokenMode: 'required' });
  const cases: string[][] = [
    h(),
    h('X-aws-ec2-metadata-token-ttl-seconds', ''),
    h('X-aws-ec2-metadata-token-ttl-seconds', '0'),
    h('X-aws-ec2-metadata-token-ttl-seconds', '21601'),
    h('X-aws-ec2-metadata-token-ttl-seconds', '-5'),
    h('X-aws-ec2-metadata-token-ttl-seconds', '1.5'),
    h('X-aws-ec2-metadata-token-ttl-seconds', '60s'),
    h('X-aws-ec2-metadata-token-ttl-seconds', '0x10'),
    h('X-aws-ec2-metadata-token-ttl-seconds', '999999'),
    h('X-aws-ec2-metadata-token-ttl-seconds', '60', 'X-aws-ec2-metadata-token-ttl-seconds', '60'),
  ];
  for (const hs of cases)
    refused(p.decide('PUT', '/latest/api/token', hs, SRC, NET), 'token_ttl_invalid', 400);
  assert.equal(p.counts.tokensIssued, 0);
});

test('token PUT with X-Forwarded-For or Forwarded is 403 forwarded_for, even with the option off', () => {
  const p = policy({ tokenMode: 'optional', refuseForwardedFor: false });
  for (const name of ['X-Forwarded-For', 'x-forwarded-for', 'Forwarded']) {
    const r = refused(
      p.decide(
        'PUT',
        '/latest/api/token',
        h(name, '10.0.0.9', 'X-aws-ec2-metadata-token-ttl-seconds', '60'),
        SRC,
        NET,
      ),
      'forwarded_for',
      403,
    );
    assert.equal(r.details.tokenRequest, true);
  }
  // The rest of the traffic is not refused for it unless refuse_forwarded_for is on.
  assert.equal(p.decide('GET', '/openstack', h('X-Forwarded-For', '1.1.1.1'), SRC, NET).kind, 'forward');
});

test('optional: no token is accepted (and counted), a valid token is accepted, a bad one is 401', () => {
  const clockNow = { now: 1_700_000_000_000 };
  const p = policy({ tokenMode: 'optional' }, clockNow);
  assert.deepEqual(p.decide('GET', '/openstack', h(), SRC, NET), { kind: 'forward', token: 'absent' });
  const token = tokenFrom(p, '10');
  assert.deepEqual(p.decide('GET', '/openstack', h('X-aws-ec2-metadata-token', token), SRC, NET), {
    kind: 'forward',
    token: 'valid',
  });
  refused(
    p.decide('GET', '/openstack', h('X-aws-ec2-metadata-token', 'nope'), SRC, NET),
    'token_invalid',
    401,
  );
  refused(
    p.decide('GET', '/openstack', h('X-aws-ec2-metadata-token', token), '10.0.0.6', NET),
    'token_invalid',
    401,
  );
  clockNow.now += 10_000;
  refused(
    p.decide('GET', '/openstack', h('X-aws-ec2-metadata-token', token), SRC, NET),
    'token_expired',
    401,
  );
  assert.deepEqual(p.counts, { tokensIssued: 1, withToken: 1, withoutToken: 1 });
});

test('required: missing, invalid, expired, repeated or foreign tokens are 401 with their reason', () => {
  const clockNow = { now: 1_700_000_000_000 };
  const p = policy({ tokenMode: 'required' }, clockNow);
  refused(p.decide('GET', '/latest/meta-data/', h(), SRC, NET), 'token_missing', 401);
  refused(p.decide('HEAD', '/openstack', h('Host', 'x'), SRC, NET), 'token_missing', 401);
  const token = tokenFrom(p, '60');
  assert.equal(
    p.decide('GET', '/latest/meta-data/', h('X-AWS-EC2-METADATA-TOKEN', token), SRC, NET).kind,
    'forward',
  );
  // The token is bound to the proxy's network or router too.
  refused(
    p.decide('GET', '/', h('X-aws-ec2-metadata-token', token), SRC, { mode: 'router', id: 'net-1' }),
    'token_invalid',
    401,
  );
  refused(
    p.decide('GET', '/', h('X-aws-ec2-metadata-token', token), SRC, { mode: 'network', id: 'net-2' }),
    'token_invalid',
    401,
  );
  const twice = refused(
    p.decide('GET', '/', h('X-aws-ec2-metadata-token', token, 'X-aws-ec2-metadata-token', token), SRC, NET),
    'token_invalid',
    401,
  );
  assert.equal(twice.details.copies, 2);
  clockNow.now += 60_000;
  refused(p.decide('GET', '/', h('X-aws-ec2-metadata-token', token), SRC, NET), 'token_expired', 401);
  // A PUT elsewhere, or another method on the token path, is an ordinary request.
  refused(p.decide('GET', '/latest/api/token', h(), SRC, NET), 'token_missing', 401);
  refused(
    p.decide('PUT', '/latest/api/token/', h('X-aws-ec2-metadata-token-ttl-seconds', '5'), SRC, NET),
    'token_missing',
    401,
  );
});

test('no refusal detail carries a token', () => {
  const p = policy({ tokenMode: 'required' });
  const token = tokenFrom(p);
  const last = token.at(-1) === 'A' ? 'B' : 'A';
  const r = refused(
    p.decide('GET', '/', h('X-aws-ec2-metadata-token', `${token.slice(0, -1)}${last}`), SRC, NET),
    'token_invalid',
    401,
  );
  assert.ok(!JSON.stringify(r).includes(token.slice(0, 20)));
});

test('refuse_forwarded_for: any request with X-Forwarded-For or Forwarded is 403', () => {
  const p = policy({ refuseForwardedFor: true });
  for (const name of ['X-Forwarded-For', 'X-FORWARDED-FOR', 'Forwarded']) {
    const r = refused(p.decide('GET', '/openstack', h(name, 'for=1.2.3.4'), SRC, NET), 'forwarded_for', 403);
    assert.equal(r.details.header, name.toLowerCase());
  }
  assert.deepEqual(p.decide('GET', '/openstack', h('X-Forwarded-Host', 'x'), SRC, NET), {
    kind: 'forward',
    token: 'off',
  });
});

test('required header: absent, wrong, differently cased value, or sent twice is 403; exact is forwarded', () => {
  const p = policy({ requiredHeader: { name: 'metadata-flavor', value: 'OpenStack' } });
  refused(p.decide('GET', '/openstack', h('User-Agent', 'Cloud-Init/24.1'), SRC, NET), 'header_missing', 403);
  const wrong = refused(
    p.decide('GET', '/openstack', h('Metadata-Flavor', 'Google'), SRC, NET),
    'header_missing',
    403,
  );
  assert.deepEqual(wrong.details, { reason: 'header_missing', header: 'metadata-flavor', present: true });
  refused(p.decide('GET', '/openstack', h('Metadata-Flavor', 'openstack'), SRC, NET), 'header_missing', 403);
  refused(
    p.decide(
      'GET',
      '/openstack',
      h('Metadata-Flavor', 'OpenStack', 'metadata-flavor', 'OpenStack'),
      SRC,
      NET,
    ),
    'header_missing',
    403,
  );
  assert.equal(p.decide('GET', '/openstack', h('metadata-FLAVOR', 'OpenStack'), SRC, NET).kind, 'forward');
});

test('required header with tokens: a valid token stands in for the header, the token PUT needs none', () => {
  const p = policy({
    tokenMode: 'optional',
    requiredHeader: { name: 'metadata-flavor', value: 'OpenStack' },
  });
  const token = tokenFrom(p); // no Metadata-Flavor on the PUT
  assert.equal(p.decide('GET', '/openstack', h('X-aws-ec2-metadata-token', token), SRC, NET).kind, 'forward');
  refused(p.decide('GET', '/openstack', h(), SRC, NET), 'header_missing', 403);
  assert.deepEqual(p.decide('GET', '/openstack', h('Metadata-Flavor', 'OpenStack'), SRC, NET), {
    kind: 'forward',
    token: 'absent',
  });
  // An invalid token is refused as such, not excused by the header.
  refused(
    p.decide(
      'GET',
      '/openstack',
      h('Metadata-Flavor', 'OpenStack', 'X-aws-ec2-metadata-token', 'x'),
      SRC,
      NET,
    ),
    'token_invalid',
    401,
  );
});

test('path lists: deny wins over allow, allow is exclusive, tricks are refused', () => {
  const p = policy({
    pathAllow: ['/openstack', '/latest/meta-data'],
    pathDeny: ['/openstack/*/user_data', '/**/password'],
  });
  const fwd = (u: string) => assert.equal(p.decide('GET', u, h(), SRC, NET).kind, 'forward', u);
  const deny = (u: string, rule: string) =>
    assert.equal(refused(p.decide('GET', u, h(), SRC, NET), 'path_denied', 403).details.rule, rule, u);
  fwd('/openstack');
  fwd('/openstack/latest/meta_data.json');
  fwd('/latest/meta-data/instance-id?x=1');
  deny('/openstack/latest/user_data', 'deny');
  deny('/openstack/2018-08-27/user_data', 'deny');
  deny('/openstack//latest/user_data', 'deny');
  deny('/openstack/latest/%75ser_data', 'deny');
  deny('/openstack/latest/password', 'deny');
  deny('/latest/user-data', 'allow');
  deny('/openstackx', 'allow');
  deny('/', 'allow');
  deny('/openstack/latest/../../latest/user-data', 'uncheckable');
  deny('/openstack/%2e%2e/latest/user-data', 'uncheckable');
  deny('/openstack%2flatest', 'uncheckable');
  deny('/openstack/%zz', 'uncheckable');
});

test('checks apply in order: forwarded, paths, token, header', () => {
  const p = policy({
    tokenMode: 'required',
    refuseForwardedFor: true,
    pathDeny: ['/secret'],
    requiredHeader: { name: 'metadata-flavor', value: 'OpenStack' },
  });
  refused(p.decide('GET', '/secret', h('X-Forwarded-For', '1.1.1.1'), SRC, NET), 'forwarded_for', 403);
  refused(p.decide('GET', '/secret', h(), SRC, NET), 'path_denied', 403);
  refused(p.decide('GET', '/open', h(), SRC, NET), 'token_missing', 401);
  // Path lists do not apply to the proxy's own token endpoint.
  const q = policy({ tokenMode: 'optional', pathAllow: ['/openstack'] });
  assert.equal(tokenFrom(q).length, 55);
});

test('a policy with tokens needs a key; bad max TTL is refused', () => {
  assert.throws(() => new SsrfPolicy({ settings: { ...OFF, tokenMode: 'required' } }), TypeError);
  assert.throws(() => policy({ tokenMaxTtl: 0 }), RangeError);
  assert.throws(() => policy({ tokenMaxTtl: 21601 }), RangeError);
});
