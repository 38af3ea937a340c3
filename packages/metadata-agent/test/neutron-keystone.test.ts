/*
 * The Neutron resolver's Keystone side against the fake OpenStack on real sockets: both auth methods,
 * one token for many lookups, early renewal, a 401 from Neutron costing exactly one re-authentication,
 * endpoint selection from the catalog by interface and region (or an override), TLS (CA bundle,
 * insecure), configuration checks, and no secret or token in any log line or error.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { ConfigError, createLogger, type LookupQuery, loadConfig, MetadataError } from '@nmp/common';
import {
  createFakeOpenStack,
  type EndpointInterface,
  FAKE_DEFAULTS,
  type FakeOpenStackOptions,
  generatePorts,
  TEST_CA_CERT,
  TEST_SERVER_CERT,
  TEST_SERVER_KEY,
} from '@nmp/openstack-fakes';
import { tempDir } from '@nmp/testkit';
import {
  apiBase,
  createNeutronResolver,
  type NeutronResolverOptions,
  neutronResolverOptions,
  resolverSchema,
  tokensUrl,
} from '../src/neutron/index.js';
import { portCacheOptions } from '../src/resolver/settings.js';
import { chooseResolver } from '../src/resolver-factory.js';
import { withoutPort } from './helpers.js';

const topo = generatePorts({ networks: 2, instancesPerNetwork: 20 });
const inst = topo.instances;
const queryFor = (i: number): LookupQuery => ({ mode: 'network', id: inst[i]!.networkId, ip: inst[i]!.ip });

function captureLogs() {
  const lines: string[] = [];
  const logger = createLogger({ name: 'test', level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { logger, lines };
}

const PASSWORD_AUTH: NeutronResolverOptions = {
  authUrl: '',
  authType: 'password',
  username: FAKE_DEFAULTS.username,
  password: FAKE_DEFAULTS.password,
  userDomainName: 'Default',
  projectName: FAKE_DEFAULTS.projectName,
  projectDomainName: 'Default',
};

const APPCRED_AUTH: NeutronResolverOptions = {
  authUrl: '',
  authType: 'v3applicationcredential',
  applicationCredentialId: FAKE_DEFAULTS.applicationCredentialId,
  applicationCredentialSecret: FAKE_DEFAULTS.applicationCredentialSecret,
};

async function start(
  t: TestContext,
  fakeOptions: FakeOpenStackOptions = {},
  options: Partial<NeutronResolverOptions> = {},
) {
  const fake = createFakeOpenStack({ ports: topo.ports, ...fakeOptions });
  await fake.listen();
  t.after(() => fake.close());
  const { logger, lines } = captureLogs();
  const resolver = createNeutronResolver(
    { ...PASSWORD_AUTH, ...options, authUrl: options.authUrl || fake.authUrl },
    logger,
  );
  t.after(() => resolver.close());
  return { fake, resolver, lines };
}

async function assertUnavailable(p: Promise<unknown>, check: (details: Record<string, unknown>) => void) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MetadataError, String(e));
    assert.equal(e.code, 'MDA_ERR_RESOLVER_UNAVAILABLE');
    assert.equal(e.status, 503);
    check(e.details as Record<string, unknown>);
    return true;
  });
}

describe('Keystone authentication', () => {
  test('password: user and project by name + domain name', async (t) => {
    const { fake, resolver, lines } = await start(t);
    assert.deepEqual(withoutPort(await resolver.resolve(queryFor(3))), {
      instanceId: inst[3]!.instanceId,
      projectId: inst[3]!.projectId,
      cached: false,
    });
    assert.equal(fake.counts.tokens, 1);
    assert.ok(lines.some((l) => l.includes('keystone token obtained')));
  });

  test('password: user and project by id, auth_url without /v3', async (t) => {
    const fake = createFakeOpenStack({
      ports: topo.ports,
      users: [{ id: 'uid-1', name: 'svc', password: 'pw-by-id', domainId: 'default' }],
    });
    await fake.listen();
    t.after(() => fake.close());
    const r = createNeutronResolver(
      {
        authUrl: fake.url,
        authType: 'password',
        userId: 'uid-1',
        password: 'pw-by-id',
        projectId: FAKE_DEFAULTS.projectId,
      },
      captureLogs().logger,
    );
    t.after(() => r.close());
    assert.equal((await r.resolve(queryFor(0))).instanceId, inst[0]!.instanceId);
    assert.equal(fake.counts.tokens, 1);
  });

  test('application credential by id', async (t) => {
    const { fake, resolver } = await start(t, {}, APPCRED_AUTH);
    assert.equal((await resolver.resolve(queryFor(1))).instanceId, inst[1]!.instanceId);
    assert.equal(fake.counts.tokens, 1);
  });

  test('application credential by name + user name + user domain', async (t) => {
    const { fake, resolver } = await start(
      t,
      {},
      {
        authType: 'v3applicationcredential',
        applicationCredentialName: 'nmp-agent-appcred',
        applicationCredentialSecret: FAKE_DEFAULTS.applicationCredentialSecret,
        username: FAKE_DEFAULTS.username,
        userDomainName: 'Default',
        password: undefined,
      },
    );
    assert.equal((await resolver.resolve(queryFor(2))).instanceId, inst[2]!.instanceId);
    assert.equal(fake.counts.tokens, 1);
  });

  test('wrong password: 503 naming keystone, no secret in the error', async (t) => {
    const { fake, resolver } = await start(t, {}, { password: 'not-the-password' });
    await assertUnavailable(resolver.resolve(queryFor(0)), (d) => {
      assert.equal(d.upstream, 'keystone');
      assert.equal(d.status, 401);
      assert.match(String(d.reason), /credentials/);
      assert.doesNotMatch(JSON.stringify(d), /not-the-password/);
    });
    assert.equal(fake.counts.ports, 0);
  });

  test('token reuse: 60 lookups (sequential and concurrent) -> 1 token', async (t) => {
    const { fake, resolver } = await start(t);
    for (let i = 0; i < 20; i++) await resolver.resolve(queryFor(i));
    await Promise.all(Array.from({ length: 40 }, (_, i) => resolver.resolve(queryFor(i))));
    assert.equal(fake.counts.tokenRequests, 1);
    assert.equal(fake.counts.tokens, 1);
    assert.equal(fake.counts.ports, 60);
  });

  test('the token is renewed shortly before it expires, in the background, without a 401', async (t) => {
    const { fake, resolver } = await start(t, { tokenTtlSeconds: 2 });
    await resolver.resolve(queryFor(0));
    assert.equal(fake.counts.tokens, 1);
    await new Promise((r) => setTimeout(r, 1600)); // past renewAt (2 s - 0.5 s), before expiry
    await resolver.resolve(queryFor(1));
    for (let i = 0; i < 50 && fake.counts.tokens < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(fake.counts.tokens, 2);
    await resolver.resolve(queryFor(2));
    assert.equal(fake.counts.tokens, 2);
    assert.equal(fake.counts.portsUnauthorized, 0);
  });

  test('Keystone down while the token is valid: lookups keep working', async (t) => {
    const { fake, resolver } = await start(t);
    await resolver.resolve(queryFor(0));
    fake.setFailure(503, 'keystone');
    assert.equal((await resolver.resolve(queryFor(1))).instanceId, inst[1]!.instanceId);
  });

  test('401 from Neutron: one re-authentication shared by concurrent lookups, then success', async (t) => {
    const { fake, resolver } = await start(t);
    await resolver.resolve(queryFor(0));
    fake.expireAllTokens();
    const out = await Promise.all(Array.from({ length: 30 }, (_, i) => resolver.resolve(queryFor(i))));
    assert.ok(out.every((r, i) => r.instanceId === inst[i]!.instanceId));
    assert.equal(fake.counts.tokens, 2, 'exactly one re-authentication');
    assert.ok(fake.counts.portsUnauthorized >= 1 && fake.counts.portsUnauthorized <= 30);
    assert.equal(fake.counts.ports, 1 + 30 + fake.counts.portsUnauthorized);
  });

  test('401 again after re-authenticating: 503 after exactly one retry', async (t) => {
    const { fake, resolver } = await start(t, { tokenTtlSeconds: 0 });
    await assertUnavailable(resolver.resolve(queryFor(0)), (d) => {
      assert.equal(d.upstream, 'neutron');
      assert.equal(d.status, 401);
    });
    assert.equal(fake.counts.tokens, 2);
    assert.equal(fake.counts.ports, 2);
  });
});

describe('endpoint selection', () => {
  const REGIONS = ['RegionOne', 'RegionTwo'];
  const IFACES: EndpointInterface[] = ['public', 'internal', 'admin'];

  for (const region of REGIONS) {
    for (const iface of IFACES) {
      test(`interface ${iface}, region ${region}`, async (t) => {
        const { fake, resolver } = await start(
          t,
          { regions: REGIONS },
          { interface: iface, regionName: region },
        );
        await resolver.resolve(queryFor(0));
        assert.deepEqual(fake.counts.byEndpoint, { [`${region}/${iface}`]: 1 });
      });
    }
  }

  test('no region: the first endpoint with the interface', async (t) => {
    const { fake, resolver } = await start(t, { regions: REGIONS }, { interface: 'internal' });
    await resolver.resolve(queryFor(0));
    assert.deepEqual(fake.counts.byEndpoint, { 'RegionOne/internal': 1 });
  });

  test('unknown region or missing interface: 503 saying so, Neutron never called', async (t) => {
    const a = await start(t, { regions: REGIONS }, { regionName: 'RegionNine' });
    await assertUnavailable(a.resolver.resolve(queryFor(0)), (d) =>
      assert.match(String(d.reason), /RegionNine/),
    );
    const b = await start(t, { interfaces: ['public'] }, { interface: 'admin' });
    await assertUnavailable(b.resolver.resolve(queryFor(0)), (d) =>
      assert.match(String(d.reason), /interface admin/),
    );
    assert.equal(a.fake.counts.ports + b.fake.counts.ports, 0);
  });

  test('endpoint_override wins over the catalog (with or without /v2.0)', async (t) => {
    const fake = createFakeOpenStack({ ports: topo.ports });
    await fake.listen();
    t.after(() => fake.close());
    for (const override of [fake.url, `${fake.url}/v2.0/`]) {
      const r = createNeutronResolver(
        { ...PASSWORD_AUTH, authUrl: fake.authUrl, endpointOverride: override },
        captureLogs().logger,
      );
      t.after(() => r.close());
      await r.resolve(queryFor(0));
    }
    assert.deepEqual(fake.counts.byEndpoint, { direct: 2 });
  });

  test('URL helpers', () => {
    assert.equal(tokensUrl('https://ks.example:5000').href, 'https://ks.example:5000/v3/auth/tokens');
    assert.equal(
      tokensUrl('https://ks.example/identity/v3/').href,
      'https://ks.example/identity/v3/auth/tokens',
    );
    assert.equal(apiBase('http://n.example:9696').href, 'http://n.example:9696/v2.0');
    assert.equal(apiBase('http://n.example/networking/').href, 'http://n.example/networking/v2.0');
    assert.equal(apiBase('http://n.example:9696/v2.0/').href, 'http://n.example:9696/v2.0');
  });
});

describe('TLS', () => {
  const tls = { key: TEST_SERVER_KEY, cert: TEST_SERVER_CERT };

  test('cafile: verified against the given CA bundle', async (t) => {
    const dir = tempDir(t, 'nmp-ca-');
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, TEST_CA_CERT);
    const { fake, resolver } = await start(t, { tls }, { caFile });
    assert.ok(fake.url.startsWith('https://'));
    assert.equal((await resolver.resolve(queryFor(0))).instanceId, inst[0]!.instanceId);
  });

  test('unknown CA: 503 with reason tls; insecure = true: accepted', async (t) => {
    const a = await start(t, { tls });
    await assertUnavailable(a.resolver.resolve(queryFor(0)), (d) => {
      assert.equal(d.reason, 'tls');
      assert.equal(d.upstream, 'keystone');
    });
    const b = await start(t, { tls }, { insecure: true });
    assert.equal((await b.resolver.resolve(queryFor(0))).instanceId, inst[0]!.instanceId);
    assert.ok(b.lines.some((l) => l.includes('insecure')));
  });

  test('unreadable cafile: ConfigError at start', () => {
    assert.throws(
      () =>
        createNeutronResolver(
          { ...PASSWORD_AUTH, authUrl: 'https://x', caFile: '/nonexistent/ca.pem' },
          captureLogs().logger,
        ),
      (e: unknown) => e instanceof ConfigError && /cafile/.test(e.message),
    );
  });
});

describe('configuration', () => {
  test('incomplete credentials are ConfigErrors naming the [neutron] option', () => {
    const { logger } = captureLogs();
    const cases: Array<[Partial<NeutronResolverOptions>, RegExp]> = [
      [{ authUrl: '' }, /auth_url is required/],
      [{ authUrl: 'ftp://x' }, /auth_url.*http/],
      [{ password: undefined }, /password is required/],
      [{ userDomainName: undefined }, /user_domain_name/],
      [{ projectName: undefined }, /project_name/],
      [{ projectDomainName: undefined }, /project_domain_name/],
      [
        { ...APPCRED_AUTH, authUrl: 'http://x', applicationCredentialSecret: undefined },
        /application_credential_secret/,
      ],
      [
        { ...APPCRED_AUTH, authUrl: 'http://x', applicationCredentialId: undefined },
        /application_credential_id/,
      ],
    ];
    for (const [over, re] of cases) {
      assert.throws(
        () =>
          createNeutronResolver({ ...PASSWORD_AUTH, authUrl: 'http://keystone.example/v3', ...over }, logger),
        (e: unknown) =>
          e instanceof ConfigError && re.test(e.message) && !e.message.includes(FAKE_DEFAULTS.password),
        String(re),
      );
    }
  });

  test('schema: keystoneauth names in [neutron], endpoint_type as a deprecated name, secrets from the file', async (t) => {
    const dir = tempDir(t, 'nmp-conf-');
    const file = join(dir, 'metadata_agent.ini');
    await writeFile(
      file,
      [
        '[DEFAULT]',
        'port_cache_ttl = 2.5',
        'negative_cache_ttl = 0.5',
        'router_cache_ttl = 60',
        '[neutron]',
        'auth_url = https://keystone.example:5000/v3',
        'auth_type = password',
        'username = neutron',
        'password = s3cr3t-pass',
        'user_domain_name = Default',
        'project_name = service',
        'project_domain_name = Default',
        'region_name = RegionTwo',
        'endpoint_type = internalURL',
        'cafile = /etc/ssl/ca.pem',
        'timeout = 2',
        '',
      ].join('\n'),
    );
    const loaded = loadConfig(resolverSchema, { flags: { 'config-file': [file] }, env: {} });
    assert.ok(loaded.warnings.some((w) => /endpoint_type is deprecated; use interface/.test(w)));
    const o = neutronResolverOptions(loaded.config);
    assert.equal(o.authUrl, 'https://keystone.example:5000/v3');
    assert.equal(o.password, 's3cr3t-pass');
    assert.equal(o.interface, 'internal');
    assert.equal(o.regionName, 'RegionTwo');
    assert.equal(o.caFile, '/etc/ssl/ca.pem');
    assert.equal(o.timeoutMs, 2000);
    assert.equal(o.connectTimeoutMs, 3000);
    assert.equal(o.routerCacheTtlMs, 60_000);
    assert.equal(o.projectId, undefined);
    // resolver = auto (the default) means neutron when [neutron] auth_url is set (and nothing else is).
    assert.equal(loaded.config.resolver, 'auto');
    assert.equal(chooseResolver(loaded.config).kind, 'neutron');
    assert.deepEqual(portCacheOptions(loaded.config), {
      ttlMs: 2500,
      maxAgeMs: 60_000,
      negativeTtlMs: 500,
      maxEntries: 10000,
    });
    assert.throws(
      () => loadConfig(resolverSchema, { flags: { 'neutron-interface': 'sideways' }, env: {} }),
      /internal, public or admin/,
    );
  });
});

test('no password, application credential secret or token in any log line or error', async (t) => {
  const fake = createFakeOpenStack({ ports: topo.ports });
  await fake.listen();
  t.after(() => fake.close());
  const { logger, lines } = captureLogs();
  const errors: unknown[] = [];
  const attempt = async (p: Promise<unknown>) => p.catch((e: unknown) => void errors.push(e));
  const password = createNeutronResolver({ ...PASSWORD_AUTH, authUrl: fake.authUrl }, logger);
  const appcred = createNeutronResolver({ ...APPCRED_AUTH, authUrl: fake.authUrl }, logger);
  const wrong = createNeutronResolver(
    { ...PASSWORD_AUTH, authUrl: fake.authUrl, password: `${FAKE_DEFAULTS.password}-x` },
    logger,
  );
  t.after(() => Promise.all([password.close(), appcred.close(), wrong.close()]));
  await password.resolve(queryFor(0));
  await appcred.resolve(queryFor(1));
  await attempt(wrong.resolve(queryFor(0)));
  fake.expireAllTokens();
  await password.resolve(queryFor(2));
  fake.setFailure(500);
  await attempt(password.resolve(queryFor(3)));
  fake.setFailure(null);
  await password.resolve(queryFor(4));
  await attempt(password.resolve({ mode: 'network', id: topo.networks[0]!, ip: '10.99.0.1' }));
  await new Promise((r) => setImmediate(r));

  const secrets = [FAKE_DEFAULTS.password, FAKE_DEFAULTS.applicationCredentialSecret, ...fake.issuedTokens()];
  assert.ok(fake.issuedTokens().length >= 3);
  assert.ok(lines.length >= 4, 'logs were captured');
  assert.ok(errors.length >= 3);
  const haystack = [
    ...lines,
    ...errors.map(
      (e) => `${(e as Error).message} ${JSON.stringify((e as MetadataError).details)} ${(e as Error).stack}`,
    ),
  ].join('\n');
  for (const s of secrets) assert.ok(!haystack.includes(s), `a secret leaked: ${s.slice(0, 6)}...`);
});
