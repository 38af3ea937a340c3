/*
 * Issue 23, items 1 and 2, against the fake OpenStack on real sockets: Keystone is asked again only after a
 * wait when asking at once cannot help.
 *   - A token whose catalog has no network service is valid: it is kept and counted, the catalog problem is
 *     logged once, and the catalog is read again (GET /v3/auth/catalog, no login) only after the wait. The
 *     defect was one POST /v3/auth/tokens per lookup with nmp_keystone_tokens_issued_total at 0.
 *   - Refused credentials: one login, then none before the wait (growing, capped, one try at a time); the
 *     lookups meanwhile get the same 503 at once; one log line; new credentials by reload() log in at once,
 *     the same ones do not. The defect was one refused login per lookup (Keystone's account lockout).
 * The SIGHUP path through the real agent process is in neutron-sighup.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import type { LookupQuery, MetadataError } from '@nmp/common';
import {
  createFakeOpenStack,
  FAKE_DEFAULTS,
  type FakeOpenStackOptions,
  generatePorts,
} from '@nmp/openstack-fakes';
import { until } from '@nmp/testkit';
import { AgentMetrics } from '../src/metrics.js';
import { createNeutronResolver, type NeutronResolverOptions, retryDelay } from '../src/neutron/index.js';
import { captureLogs, expectResolverUnavailable } from './helpers.js';
import { sample } from './prom-text.js';

const topo = generatePorts({ networks: 1, instancesPerNetwork: 60 });
const inst = topo.instances;
const queryFor = (i: number): LookupQuery => ({
  mode: 'network',
  id: inst[i % inst.length]!.networkId,
  ip: inst[i % inst.length]!.ip,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const AUTH: NeutronResolverOptions = {
  authUrl: '',
  authType: 'password',
  username: FAKE_DEFAULTS.username,
  password: FAKE_DEFAULTS.password,
  userDomainName: 'Default',
  projectName: FAKE_DEFAULTS.projectName,
  projectDomainName: 'Default',
};

async function start(
  t: TestContext,
  fakeOptions: FakeOpenStackOptions = {},
  options: Partial<NeutronResolverOptions> = {},
) {
  const fake = createFakeOpenStack({ ports: topo.ports, ...fakeOptions });
  await fake.listen();
  t.after(() => fake.close());
  const logs = captureLogs();
  const resolver = createNeutronResolver({ ...AUTH, ...options, authUrl: fake.authUrl }, logs.logger);
  t.after(() => resolver.close());
  const metrics = new AgentMetrics();
  metrics.setSources({ neutron: () => resolver.stats });
  return { fake, resolver, logs, metrics };
}

/** The lookup's failure (it must fail with the 503 of an unavailable resolver). */

test('retryDelay: starts at the first wait, doubles, stops at the cap', () => {
  const r = { initialMs: 5000, maxMs: 300_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 50].map((n) => retryDelay(r, n)),
    [5000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000],
  );
  assert.equal(retryDelay({ initialMs: 5000, maxMs: 1000 }, 1), 1000, 'a cap below the first wait wins');
});

describe('a catalog without the network service (item 1)', () => {
  test('52 lookups: one login, the token counted and kept, one log line, Neutron never asked', async (t) => {
    const { fake, resolver, logs, metrics } = await start(t, { networkInCatalog: false });
    const reasons = new Set<string>();
    for (let i = 0; i < 52; i++)
      reasons.add(String((await expectResolverUnavailable(resolver.resolve(queryFor(i)))).details.reason));
    assert.deepEqual([...reasons], ['no network service in the catalog (is the token project-scoped?)']);
    assert.equal(fake.counts.tokenRequests, 1, 'logins for 52 lookups');
    assert.equal(fake.counts.tokens, 1);
    assert.equal(resolver.stats.tokensIssued, 1);
    assert.equal(sample(await metrics.render(), 'nmp_keystone_tokens_issued_total'), 1);
    assert.equal(fake.counts.ports, 0);
    const reported = logs
      .lines()
      .filter((l) => String(l.msg).includes('catalog has no usable network endpoint'));
    assert.equal(reported.length, 1, 'the catalog problem is logged once');
    assert.equal(reported[0]!.level, 'error');
    assert.equal(reported[0]!.reason, 'no network service in the catalog (is the token project-scoped?)');
  });

  test('after the wait the kept token reads its catalog again (no login) and works once neutron is registered', async (t) => {
    const { fake, resolver, logs } = await start(
      t,
      { networkInCatalog: false },
      { authRetryInitialMs: 150, authRetryMaxMs: 600 },
    );
    const first = await expectResolverUnavailable(resolver.resolve(queryFor(0)));
    assert.ok(typeof first.details.retryAt === 'string', 'the 503 says when Keystone is asked again');
    // Lookups for about a second: the catalog is read again at most once per (growing) wait.
    const t0 = Date.now();
    let lookups = 1;
    while (Date.now() - t0 < 1000) {
      await expectResolverUnavailable(resolver.resolve(queryFor(lookups++)));
      await sleep(10);
    }
    const elapsed = Date.now() - t0;
    // Waits of 150, 300, 600, 600... ms: in `elapsed` ms at most this many rereads can be due.
    let due = 0;
    for (let at = 150, n = 1; at <= elapsed + 50; n++, at += retryDelay({ initialMs: 150, maxMs: 600 }, n))
      due++;
    assert.ok(fake.counts.catalogRequests >= 1, 'the catalog is read again after the wait');
    assert.ok(
      fake.counts.catalogRequests <= due,
      `${fake.counts.catalogRequests} catalog reads in ${elapsed} ms (${lookups} lookups), at most ${due} due`,
    );
    assert.equal(fake.counts.tokenRequests, 1, `logins for ${lookups} lookups`);
    const waits = logs
      .lines()
      .filter((l) => typeof l.retryInMs === 'number')
      .map((l) => l.retryInMs);
    assert.deepEqual(waits, [150, 300, 600, 600, 600].slice(0, waits.length), 'the wait doubles to the cap');

    fake.setNetworkInCatalog(true);
    await sleep(650);
    const answer = await resolver.resolve(queryFor(1));
    assert.equal(answer.instanceId, inst[1]!.instanceId);
    assert.equal(fake.counts.tokenRequests, 1, 'the same token serves once the catalog has the endpoint');
    assert.equal(fake.counts.portsUnauthorized, 0);
    assert.ok(logs.lines().some((l) => l.msg === 'network endpoint found in the catalog'));
    const reads = fake.counts.catalogRequests;
    for (let i = 2; i < 12; i++) await resolver.resolve(queryFor(i));
    assert.equal(fake.counts.catalogRequests, reads, 'no catalog read once usable');
    assert.equal(fake.counts.tokenRequests, 1);
  });

  test('a missing interface or region is the same: the token is kept, no login per lookup', async (t) => {
    const { fake, resolver } = await start(t, { interfaces: ['public'] }, { interface: 'admin' });
    for (let i = 0; i < 10; i++) {
      const e = await expectResolverUnavailable(resolver.resolve(queryFor(i)));
      assert.match(String(e.details.reason), /no network endpoint for interface admin/);
    }
    assert.equal(fake.counts.tokenRequests, 1);
    assert.equal(resolver.stats.tokensIssued, 1);
  });

  test('reload() with the same credentials reads the catalog again at once, without a login', async (t) => {
    const { fake, resolver } = await start(t, { networkInCatalog: false }, { authRetryInitialMs: 60_000 });
    await expectResolverUnavailable(resolver.resolve(queryFor(0)));
    fake.setNetworkInCatalog(true);
    await expectResolverUnavailable(resolver.resolve(queryFor(1))); // still waiting (60 s)
    assert.equal(fake.counts.catalogRequests, 0);
    assert.equal(resolver.reloadCredentials({ ...AUTH, authUrl: fake.authUrl }), 'catalog');
    await until('the catalog read', () => fake.counts.catalogRequests === 1, 5000);
    const answer = await resolver.resolve(queryFor(2));
    assert.equal(answer.instanceId, inst[2]!.instanceId);
    assert.equal(fake.counts.tokenRequests, 1);
  });
});

describe('refused credentials (item 2)', () => {
  const WRONG = { password: 'not-the-password' };

  test('5 sequential lookups: one login, the same 503 at once for the others, one log line', async (t) => {
    const { fake, resolver, logs, metrics } = await start(t, {}, WRONG);
    const errors: MetadataError[] = [];
    const took: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      errors.push(await expectResolverUnavailable(resolver.resolve(queryFor(i))));
      took.push(performance.now() - t0);
    }
    assert.equal(fake.counts.tokenRequests, 1, 'logins for 5 lookups');
    for (const e of errors) {
      assert.equal(e.details.upstream, 'keystone');
      assert.equal(e.details.status, 401);
      assert.equal(e.details.reason, 'authentication refused: check the credentials in [neutron]');
      assert.equal(e.details.retryAt, errors[0]!.details.retryAt, 'the same wait');
      assert.doesNotMatch(JSON.stringify(e.details), /not-the-password/);
    }
    // Answered without asking Keystone (the fake counted nothing); loosely, for a busy machine.
    assert.ok(
      took.slice(1).every((ms) => ms < 500),
      `lookups during the wait took ${took.map(Math.round)} ms`,
    );
    const refused = logs.lines().filter((l) => String(l.msg).startsWith('keystone refused'));
    assert.equal(refused.length, 1, 'said once');
    assert.equal(refused[0]!.level, 'error');
    assert.equal(refused[0]!.retryInMs, 5000, 'the default first wait');
    assert.doesNotMatch(logs.text(), /not-the-password/);
    assert.equal(fake.counts.ports, 0);
    const text = await metrics.render();
    assert.equal(sample(text, 'nmp_keystone_auth_failures_total'), 1);
    assert.equal(sample(text, 'nmp_keystone_tokens_issued_total'), 0);
  });

  test('a boot storm of 200 concurrent lookups costs one login; after the wait, one more', async (t) => {
    const { fake, resolver } = await start(t, {}, { ...WRONG, authRetryInitialMs: 200 });
    const storm = () =>
      Promise.all(
        Array.from({ length: 200 }, (_, i) => expectResolverUnavailable(resolver.resolve(queryFor(i)))),
      );
    await storm();
    assert.equal(fake.counts.tokenRequests, 1);
    await storm();
    assert.equal(fake.counts.tokenRequests, 1, 'still waiting');
    await sleep(250);
    await storm();
    assert.equal(fake.counts.tokenRequests, 2, 'one try at a time when the wait is over');
  });

  test('the wait grows and is capped (auth_retry_max_interval), with one try per wait', async (t) => {
    const retry = { initialMs: 100, maxMs: 400 };
    const { fake, resolver, logs } = await start(
      t,
      {},
      {
        ...WRONG,
        authRetryInitialMs: retry.initialMs,
        authRetryMaxMs: retry.maxMs,
      },
    );
    const t0 = Date.now();
    let lookups = 0;
    while (Date.now() - t0 < 1800) {
      await expectResolverUnavailable(resolver.resolve(queryFor(lookups++)));
      await sleep(5);
    }
    const elapsed = Date.now() - t0;
    let due = 0;
    for (let at = 0, n = 1; at <= elapsed; n++, at += retryDelay(retry, n)) due++;
    const logins = fake.counts.tokenRequests;
    assert.ok(logins >= 3, `${logins} logins in ${elapsed} ms: the wait ends`);
    assert.ok(logins <= due, `${logins} logins for ${lookups} lookups in ${elapsed} ms, at most ${due} due`);
    const waits = logs
      .lines()
      .filter((l) => typeof l.retryInMs === 'number')
      .map((l) => l.retryInMs);
    assert.equal(waits.length, logins);
    assert.deepEqual(waits, [100, 200, 400, 400, 400, 400, 400].slice(0, logins));
    assert.equal(logs.lines().filter((l) => String(l.msg).startsWith('keystone refused')).length, 1);
  });

  test('reload() with new credentials logs in at once; with the same ones it does not', async (t) => {
    const { fake, resolver, logs } = await start(t, {}, { ...WRONG, authRetryInitialMs: 60_000 });
    await expectResolverUnavailable(resolver.resolve(queryFor(0)));
    assert.equal(resolver.reloadCredentials({ ...AUTH, ...WRONG, authUrl: fake.authUrl }), 'none');
    await sleep(50);
    assert.equal(fake.counts.tokenRequests, 1, 'the same refused credentials wait');
    assert.equal(resolver.reloadCredentials({ ...AUTH, authUrl: fake.authUrl }), 'login');
    await until('the login with the new password', () => fake.counts.tokens === 1, 5000);
    assert.equal(fake.counts.tokenRequests, 2);
    assert.equal((await resolver.resolve(queryFor(1))).instanceId, inst[1]!.instanceId);
    assert.equal(fake.counts.tokenRequests, 2);
    assert.ok(logs.lines().some((l) => l.msg === 'keystone credentials changed; logging in with them now'));
  });

  test('new credentials refused while a token is valid: the token keeps serving, the refusal waits', async (t) => {
    const { fake, resolver, logs } = await start(t, {}, { authRetryInitialMs: 60_000 });
    await resolver.resolve(queryFor(0));
    assert.equal(resolver.reloadCredentials({ ...AUTH, ...WRONG, authUrl: fake.authUrl }), 'login');
    await until(
      'the refusal',
      () => logs.lines().some((l) => String(l.msg).startsWith('keystone refused')),
      5000,
    );
    for (let i = 1; i < 20; i++)
      assert.equal((await resolver.resolve(queryFor(i))).instanceId, inst[i]!.instanceId);
    assert.equal(fake.counts.tokenRequests, 2);
    // The token dies (revoked): the refusal's wait holds, no login per lookup.
    fake.expireAllTokens();
    for (let i = 20; i < 30; i++) await expectResolverUnavailable(resolver.resolve(queryFor(i)));
    assert.equal(fake.counts.tokenRequests, 2);
  });

  test('a Keystone error (5xx) does not start a wait: the next lookup logs in', async (t) => {
    const { fake, resolver } = await start(t);
    fake.setFailure(503, 'keystone');
    await expectResolverUnavailable(resolver.resolve(queryFor(0)));
    fake.setFailure(null, 'keystone');
    assert.equal((await resolver.resolve(queryFor(1))).instanceId, inst[1]!.instanceId);
    assert.equal(fake.counts.tokenRequests, 2);
  });
});
