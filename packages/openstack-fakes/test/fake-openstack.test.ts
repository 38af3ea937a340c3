/*
 * The fake must speak Keystone's and Neutron's real wire protocol, or tests built on it prove nothing:
 * token in X-Subject-Token, catalog shape, Neutron's filter syntax, 401 on a missing or expired token.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createFakeOpenStack, type FakeOpenStack } from '../src/fake-openstack.js';
import { FAKE_DEFAULTS } from '../src/keystone.js';
import type { FakePort } from '../src/neutron-ports.js';
import { generatePorts } from '../src/port-generator.js';

const NET_A = '11111111-1111-4111-8111-111111111111';
const NET_B = '22222222-2222-4222-8222-222222222222';
const ROUTER = '33333333-3333-4333-8333-333333333333';
const PROJECT_X = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';

const PORTS: FakePort[] = [
  {
    id: 'p1',
    network_id: NET_A,
    mac_address: 'fa:16:3e:00:00:01',
    fixed_ips: [{ ip_address: '10.0.0.5', subnet_id: 'sa' }],
    device_id: 'vm-1',
    device_owner: 'compute:nova',
    project_id: PROJECT_X,
  },
  {
    id: 'p2',
    network_id: NET_B,
    mac_address: 'fa:16:3e:00:00:02',
    fixed_ips: [{ ip_address: '10.0.0.5', subnet_id: 'sb' }],
    device_id: 'vm-2',
    device_owner: 'compute:nova',
    project_id: FAKE_DEFAULTS.projectId,
  },
  {
    id: 'r1',
    network_id: NET_A,
    fixed_ips: [{ ip_address: '10.0.0.1', subnet_id: 'sa' }],
    device_id: ROUTER,
    device_owner: 'network:router_interface',
    project_id: PROJECT_X,
  },
  {
    id: 'r2',
    network_id: NET_B,
    fixed_ips: [{ ip_address: '10.0.0.1', subnet_id: 'sb' }],
    device_id: ROUTER,
    device_owner: 'network:ha_router_replicated_interface',
    project_id: PROJECT_X,
  },
];

function passwordAuth(password: string = FAKE_DEFAULTS.password) {
  return {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: FAKE_DEFAULTS.username, domain: { name: 'Default' }, password } },
      },
      scope: { project: { name: FAKE_DEFAULTS.projectName, domain: { name: 'Default' } } },
    },
  };
}

async function token(fake: FakeOpenStack, body: unknown = passwordAuth()): Promise<Response> {
  return fetch(`${fake.authUrl}/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('fake OpenStack', () => {
  let fake: FakeOpenStack;
  let tok: string;

  before(async () => {
    fake = createFakeOpenStack({
      ports: PORTS,
      regions: ['RegionOne', 'RegionTwo'],
      users: [
        { name: FAKE_DEFAULTS.username, password: FAKE_DEFAULTS.password },
        { name: 'member-user', password: 'pw', roles: ['member'] },
      ],
      projects: [
        { id: FAKE_DEFAULTS.projectId, name: FAKE_DEFAULTS.projectName },
        { id: PROJECT_X, name: 'tenant-x' },
      ],
    });
    await fake.listen();
    const res = await token(fake);
    tok = res.headers.get('x-subject-token') ?? '';
  });
  after(() => fake.close());

  const ports = async (query: string, auth: string | null = tok, base = fake.url) => {
    const res = await fetch(`${base}/v2.0/ports?${query}`, { headers: auth ? { 'X-Auth-Token': auth } : {} });
    return { status: res.status, body: (await res.json()) as { ports: Record<string, unknown>[] } };
  };
  const ids = (b: { ports: Record<string, unknown>[] }) => b.ports.map((p) => p.id).sort();

  test('password auth: 201, token in X-Subject-Token, body with expires_at and a network catalog', async () => {
    const res = await token(fake);
    assert.equal(res.status, 201);
    assert.match(res.headers.get('x-subject-token') ?? '', /^gAAAAA/);
    const body = (await res.json()) as {
      token: {
        expires_at: string;
        project: { name: string };
        catalog: { type: string; endpoints: { interface: string; region_id: string; url: string }[] }[];
      };
    };
    assert.ok(Date.parse(body.token.expires_at) > Date.now() + 3000_000);
    assert.match(body.token.expires_at, /\.\d{6}Z$/);
    assert.equal(body.token.project.name, FAKE_DEFAULTS.projectName);
    const network = body.token.catalog.find((s) => s.type === 'network');
    assert.equal(network?.endpoints.length, 6);
    const internal2 = network?.endpoints.find(
      (e) => e.interface === 'internal' && e.region_id === 'RegionTwo',
    );
    assert.equal(internal2?.url, fake.endpointUrl('RegionTwo', 'internal'));
  });

  test('wrong password -> 401 with a Keystone error body; missing domain -> 400', async () => {
    const res = await token(fake, passwordAuth('nope'));
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: number } }).error.code, 401);
    const noDomain = passwordAuth();
    delete (noDomain.auth.identity.password.user as { domain?: unknown }).domain;
    assert.equal((await token(fake, noDomain)).status, 400);
  });

  test('application credential by id; scope with an application credential -> 401', async () => {
    const body = {
      auth: {
        identity: {
          methods: ['application_credential'],
          application_credential: {
            id: FAKE_DEFAULTS.applicationCredentialId,
            secret: FAKE_DEFAULTS.applicationCredentialSecret,
          },
        },
      },
    };
    const res = await token(fake, body);
    assert.equal(res.status, 201);
    assert.ok(res.headers.get('x-subject-token'));
    assert.equal(
      (await token(fake, { auth: { ...body.auth, scope: { project: { id: 'x' } } } })).status,
      401,
    );
  });

  test('GET /v3/auth/catalog: the current catalog for a token (as Debian keystone 22 answers); 401 without one', async () => {
    const catalog = async (auth: string | null) => {
      const res = await fetch(`${fake.url}/v3/auth/catalog`, {
        headers: auth ? { 'X-Auth-Token': auth } : {},
      });
      return {
        status: res.status,
        body: (await res.json()) as { catalog?: { type: string }[]; links?: { self: string } },
      };
    };
    const types = (b: { catalog?: { type: string }[] }) => (b.catalog ?? []).map((s) => s.type);
    const full = await catalog(tok);
    assert.equal(full.status, 200);
    assert.deepEqual(types(full.body), ['compute', 'network', 'identity']);
    assert.equal(full.body.links?.self, `${fake.url}/v3/auth/catalog`);
    // The catalog is read when asked, so the same token sees neutron's endpoint appear and go.
    fake.setNetworkInCatalog(false);
    try {
      assert.deepEqual(types((await catalog(tok)).body), ['compute', 'identity']);
      const body = (await (await token(fake)).json()) as { token: { catalog: { type: string }[] } };
      assert.deepEqual(types(body.token), ['compute', 'identity']);
    } finally {
      fake.setNetworkInCatalog(true);
    }
    assert.equal((await catalog(null)).status, 401);
    assert.equal((await catalog('bogus')).status, 401);
  });

  test('ports: 401 without or with an unknown token', async () => {
    assert.equal((await ports('', null)).status, 401);
    assert.equal((await ports('', 'bogus')).status, 401);
  });

  test('ports: network_id + fixed_ips=ip_address=, repeated keys are OR, fields trims', async () => {
    let r = await ports(`network_id=${NET_A}&fixed_ips=ip_address%3D10.0.0.5`);
    assert.deepEqual(ids(r.body), ['p1']);
    r = await ports(`network_id=${NET_A}&network_id=${NET_B}&fixed_ips=ip_address=10.0.0.5`);
    assert.deepEqual(ids(r.body), ['p1', 'p2']);
    r = await ports(`fixed_ips=ip_address=10.0.0.5&fixed_ips=subnet_id=sb&fields=id&fields=device_id`);
    assert.deepEqual(r.body.ports, [{ id: 'p2', device_id: 'vm-2' }]);
    r = await ports(`mac_address=FA:16:3E:00:00:01&network_id=${NET_A}`);
    assert.deepEqual(ids(r.body), ['p1']);
    r = await ports(
      `device_id=${ROUTER}&device_owner=network%3Arouter_interface&device_owner=network:ha_router_replicated_interface&fields=network_id`,
    );
    assert.deepEqual(r.body.ports.map((p) => p.network_id).sort(), [NET_A, NET_B]);
    assert.equal(r.body.ports[0]?.id, undefined);
  });

  test('ports: unknown filter -> 400 NeutronError', async () => {
    const r = await ports('colour=red');
    assert.equal(r.status, 400);
    assert.match(JSON.stringify(r.body), /NeutronError/);
  });

  test('ports through a catalog endpoint are counted per region/interface', async () => {
    fake.resetCounts();
    await ports(`network_id=${NET_A}`, tok, fake.endpointUrl('RegionTwo', 'admin'));
    assert.deepEqual(fake.counts.byEndpoint, { 'RegionTwo/admin': 1 });
  });

  test('a member-role token sees only its own project ports', async () => {
    const res = await token(fake, {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: 'member-user', domain: { id: 'default' }, password: 'pw' } },
        },
        scope: { project: { id: PROJECT_X } },
      },
    });
    const memberToken = res.headers.get('x-subject-token') ?? '';
    assert.deepEqual(ids((await ports('fixed_ips=ip_address=10.0.0.5', memberToken)).body), ['p1']);
  });

  test('expireAllTokens -> 401; setFailure; setLatency; movePort', async () => {
    const fresh = (await token(fake)).headers.get('x-subject-token') ?? '';
    fake.expireAllTokens();
    assert.equal((await ports('', fresh)).status, 401);
    const t2 = (await token(fake)).headers.get('x-subject-token') ?? '';
    assert.equal((await ports('', t2)).status, 200);

    fake.setFailure(503);
    assert.equal((await ports('', t2)).status, 503);
    fake.setFailure('reset');
    await assert.rejects(ports('', t2));
    fake.setFailure(null);

    fake.setLatency(150);
    const t0 = performance.now();
    await ports('', t2);
    assert.ok(performance.now() - t0 >= 140);
    fake.setLatency(0);

    fake.movePort('p1', 'vm-9', 'bbbb');
    const r = await ports(`network_id=${NET_A}&fixed_ips=ip_address=10.0.0.5`, t2);
    assert.equal(r.body.ports[0]?.device_id, 'vm-9');
    assert.equal(r.body.ports[0]?.project_id, 'bbbb');
    fake.setPorts(PORTS);
  });

  test('close() then listen() again: refused while down, same URL when back', async () => {
    const url = fake.url;
    await fake.close();
    await assert.rejects(fetch(`${url}/v3`));
    assert.equal(await fake.listen(), url);
    assert.equal((await fetch(`${url}/v3`)).status, 200);
  });
});

test('CLI serves a ports file and prints its URL', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'osfakes-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'inventory.json');
  await writeFile(file, JSON.stringify({ ports: PORTS }));
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const child = spawn(process.execPath, [cli, '--ports', file, '--latency-ms', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no URL within 10 s')), 10_000);
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const res = await fetch(`${url}/v3/auth/tokens`, { method: 'POST', body: JSON.stringify(passwordAuth()) });
  assert.equal(res.status, 201);
  const ports = await fetch(`${url}/v2.0/ports?network_id=${NET_A}`, {
    headers: { 'X-Auth-Token': res.headers.get('x-subject-token') ?? '' },
  });
  assert.equal(((await ports.json()) as { ports: unknown[] }).ports.length, 2);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
});

test('generatePorts: unique addresses, MACs and ids; one router interface and one DHCP port per network', () => {
  const topo = generatePorts({ networks: 4, instancesPerNetwork: 300 });
  assert.equal(topo.instances.length, 1200);
  assert.equal(topo.ports.length, 1200 + 8);
  assert.equal(new Set(topo.instances.map((i) => `${i.networkId} ${i.ip}`)).size, 1200);
  assert.equal(new Set(topo.instances.map((i) => i.mac)).size, 1200);
  assert.equal(new Set(topo.ports.map((p) => p.id)).size, topo.ports.length);
  assert.equal(topo.ports.filter((p) => p.device_owner === 'network:router_interface').length, 4);
  assert.ok(
    topo.instances.every(
      (i) => /^10\.\d+\.\d+\.\d+$/.test(i.ip) && /^fa:16:3e(:[0-9a-f]{2}){3}$/.test(i.mac),
    ),
  );
});
