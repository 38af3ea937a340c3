/*
 * Port lookups through Neutron's API against the fake on real sockets: network mode by IP, link-local
 * IPv6 by MAC, router mode through the router's interface ports (cached, re-read when a network may have
 * been attached), and the match rule's 404 cases (missing, ambiguous, no device), with the exact query
 * syntax Neutron receives.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import {
  createLogger,
  type LookupQuery,
  MetadataError,
  parseForwardedFor,
  ROUTER_INTERFACE_OWNERS,
} from '@nmp/common';
import {
  createFakeOpenStack,
  FAKE_DEFAULTS,
  type FakeOpenStackOptions,
  type FakePort,
  generatePorts,
} from '@nmp/openstack-fakes';
import { createNeutronResolver, type NeutronResolverOptions } from '../src/neutron/index.js';
import { withoutPort } from './helpers.js';

const topo = generatePorts({ networks: 3, instancesPerNetwork: 10 });
const inst = topo.instances;

async function start(
  t: TestContext,
  fakeOptions: FakeOpenStackOptions = {},
  options: Partial<NeutronResolverOptions> = {},
) {
  const fake = createFakeOpenStack({ ports: topo.ports, ...fakeOptions });
  await fake.listen();
  t.after(() => fake.close());
  const lines: string[] = [];
  const logger = createLogger({ name: 'test', level: 'debug' }, { write: (s: string) => void lines.push(s) });
  const resolver = createNeutronResolver(
    {
      authUrl: fake.authUrl,
      authType: 'password',
      username: FAKE_DEFAULTS.username,
      password: FAKE_DEFAULTS.password,
      userDomainName: 'Default',
      projectName: FAKE_DEFAULTS.projectName,
      projectDomainName: 'Default',
      ...options,
    },
    logger,
  );
  t.after(() => resolver.close());
  return { fake, resolver, lines };
}

async function rejectsWith(p: Promise<unknown>, code: string, check: (e: MetadataError) => void = () => {}) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MetadataError, String(e));
    assert.equal(e.code, code);
    check(e);
    return true;
  });
}

describe('network mode', () => {
  test('every instance is found by its IP on its network, with the filter syntax Neutron expects', async (t) => {
    const { fake, resolver } = await start(t);
    for (const i of inst) {
      const id = await resolver.resolve({ mode: 'network', id: i.networkId, ip: i.ip });
      assert.deepEqual(withoutPort(id), { instanceId: i.instanceId, projectId: i.projectId, cached: false });
    }
    assert.equal(fake.counts.portLookups, inst.length);
    const sent = new URLSearchParams(fake.portQueries[0]);
    assert.deepEqual(sent.getAll('network_id'), [inst[0]!.networkId]);
    assert.deepEqual(sent.getAll('fixed_ips'), [`ip_address=${inst[0]!.ip}`]);
    assert.ok(sent.getAll('fields').includes('device_id') && sent.getAll('fields').includes('project_id'));
    assert.match(fake.portQueries[0]!, /fixed_ips=ip_address%3D10\.0\.0\.10/);
  });

  test('the right IP on another network: 404 no port', async (t) => {
    const { resolver } = await start(t);
    const q: LookupQuery = { mode: 'network', id: topo.networks[1]!, ip: inst[0]!.ip };
    await rejectsWith(resolver.resolve(q), 'MDA_ERR_PORT_NOT_FOUND', (e) => {
      assert.equal(e.status, 404);
      assert.equal(e.message, `Instance was not found on network ${topo.networks[1]}.`);
      assert.equal(e.details.case, 'no port with a device');
    });
  });

  test('two ports with the address and a device: 404 ambiguous, naming both ports', async (t) => {
    const dup: FakePort = {
      id: 'dup-port',
      network_id: inst[0]!.networkId,
      fixed_ips: [{ ip_address: inst[0]!.ip }],
      device_id: 'other-vm',
      device_owner: 'compute:nova',
      project_id: 'x',
    };
    const { resolver } = await start(t, { ports: [...topo.ports, dup] });
    await rejectsWith(
      resolver.resolve({ mode: 'network', id: inst[0]!.networkId, ip: inst[0]!.ip }),
      'MDA_ERR_PORT_AMBIGUOUS',
      (e) => {
        assert.equal(e.status, 404);
        assert.equal(e.details.case, 'several ports');
        assert.deepEqual([...(e.details.ports as string[])].sort(), [inst[0]!.portId, 'dup-port'].sort());
      },
    );
  });

  test('a port without a device (unbound / reserved address) does not count', async (t) => {
    const reserved: FakePort = {
      id: 'vip',
      network_id: topo.networks[0]!,
      fixed_ips: [{ ip_address: '10.0.0.200' }],
      device_id: '',
    };
    const { resolver } = await start(t, { ports: [...topo.ports, reserved] });
    await rejectsWith(
      resolver.resolve({ mode: 'network', id: topo.networks[0]!, ip: '10.0.0.200' }),
      'MDA_ERR_PORT_NOT_FOUND',
    );
  });

  test('link-local IPv6 source: looked up by the EUI-64 MAC, not by IP', async (t) => {
    const { fake, resolver } = await start(t);
    const target = inst[13]!; // network 1, MAC fa:16:3e:01:00:03
    const mac = target.mac.split(':');
    const lla = `fe80::${(Number.parseInt(mac[0]!, 16) ^ 2).toString(16)}${mac[1]}:${mac[2]}ff:fe${mac[3]}:${mac[4]}${mac[5]}`;
    const addr = parseForwardedFor(lla);
    assert.equal(addr?.mac, target.mac);
    const q: LookupQuery = { mode: 'network', id: target.networkId, ip: addr!.ip, mac: addr!.mac! };
    assert.equal((await resolver.resolve(q)).instanceId, target.instanceId);
    const sent = new URLSearchParams(fake.portQueries.at(-1));
    assert.deepEqual(sent.getAll('mac_address'), [target.mac]);
    assert.equal(sent.has('fixed_ips'), false);
    // Same MAC on another network: not this instance.
    await rejectsWith(resolver.resolve({ ...q, id: topo.networks[0]! }), 'MDA_ERR_PORT_NOT_FOUND');
  });

  test('a member-role user only sees its own project: other projects look missing (docs/neutron.md)', async (t) => {
    const { resolver } = await start(t, {
      users: [{ name: FAKE_DEFAULTS.username, password: FAKE_DEFAULTS.password, roles: ['member'] }],
    });
    await rejectsWith(
      resolver.resolve({ mode: 'network', id: inst[0]!.networkId, ip: inst[0]!.ip }),
      'MDA_ERR_PORT_NOT_FOUND',
    );
  });
});

describe('router mode', () => {
  test("the router's interface ports give its networks (one cached lookup), then the port on them", async (t) => {
    const { fake, resolver } = await start(t);
    for (const i of inst) {
      const id = await resolver.resolve({ mode: 'router', id: topo.routerId, ip: i.ip });
      assert.equal(id.instanceId, i.instanceId);
    }
    assert.equal(fake.counts.routerLookups, 1);
    assert.equal(fake.counts.portLookups, inst.length);
    const routerQuery = new URLSearchParams(fake.portQueries[0]);
    assert.deepEqual(routerQuery.getAll('device_id'), [topo.routerId]);
    assert.deepEqual(routerQuery.getAll('device_owner'), [...ROUTER_INTERFACE_OWNERS]);
    assert.deepEqual(routerQuery.getAll('fields'), ['network_id']);
    const portQuery = new URLSearchParams(fake.portQueries[1]);
    assert.deepEqual(portQuery.getAll('network_id').sort(), [...topo.networks].sort());
  });

  test('unknown router or an address on none of its networks: 404 on router', async (t) => {
    const { resolver } = await start(t);
    await rejectsWith(
      resolver.resolve({ mode: 'router', id: 'no-such-router', ip: inst[0]!.ip }),
      'MDA_ERR_PORT_NOT_FOUND',
      (e) => assert.equal(e.message, 'Instance was not found on router no-such-router.'),
    );
    await rejectsWith(
      resolver.resolve({ mode: 'router', id: topo.routerId, ip: '192.168.7.7' }),
      'MDA_ERR_PORT_NOT_FOUND',
    );
  });

  test('a network attached after the router list was cached: noCache re-reads it at once', async (t) => {
    const { fake, resolver } = await start(t);
    await resolver.resolve({ mode: 'router', id: topo.routerId, ip: inst[0]!.ip });
    const extra = attachNetwork(fake.ports, topo.routerId);
    fake.setPorts([...fake.ports, ...extra.ports]);
    const q: LookupQuery = { mode: 'router', id: topo.routerId, ip: extra.ip };
    // Within a second of reading the list, a miss does not re-read it (a scan must not hammer Neutron)...
    await rejectsWith(resolver.resolve(q), 'MDA_ERR_PORT_NOT_FOUND');
    assert.equal(fake.counts.routerLookups, 1);
    // ...but the agent's uncached retry does.
    assert.equal((await resolver.resolve(q, { noCache: true })).instanceId, extra.instanceId);
    assert.equal(fake.counts.routerLookups, 2);
  });

  test('a network attached after the router list was cached: found once the list is a second old', async (t) => {
    const { fake, resolver } = await start(t);
    await resolver.resolve({ mode: 'router', id: topo.routerId, ip: inst[0]!.ip });
    const extra = attachNetwork(fake.ports, topo.routerId);
    fake.setPorts([...fake.ports, ...extra.ports]);
    await new Promise((r) => setTimeout(r, 1100));
    const q: LookupQuery = { mode: 'router', id: topo.routerId, ip: extra.ip };
    assert.equal((await resolver.resolve(q)).instanceId, extra.instanceId);
    assert.equal(fake.counts.routerLookups, 2);
  });

  test('router -> networks lookups are shared by concurrent requests', async (t) => {
    const { fake, resolver } = await start(t, { latencyMs: 20 });
    await Promise.all(inst.map((i) => resolver.resolve({ mode: 'router', id: topo.routerId, ip: i.ip })));
    assert.equal(fake.counts.routerLookups, 1);
  });
});

function attachNetwork(existing: readonly FakePort[], routerId: string) {
  const networkId = `added-net-${existing.length}`;
  const instanceId = `added-vm-${existing.length}`;
  const ip = '10.250.0.10';
  const ports: FakePort[] = [
    {
      id: `${networkId}-rif`,
      network_id: networkId,
      fixed_ips: [{ ip_address: '10.250.0.1' }],
      device_id: routerId,
      device_owner: 'network:router_interface_distributed',
      project_id: 'p-added',
    },
    {
      id: `${networkId}-vm`,
      network_id: networkId,
      fixed_ips: [{ ip_address: ip }],
      device_id: instanceId,
      device_owner: 'compute:nova',
      project_id: 'p-added',
    },
  ];
  return { ports, ip, instanceId };
}
