/* The static inventory resolver: network and router lookups, MAC lookups, missing and ambiguous ports. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, MetadataError } from '@nmp/common';
import { InventoryResolver } from '../src/resolver/inventory-resolver.js';
import { INSTANCE, NET, PORTS, PROJECT, ROUTER, tempDir, withoutPort } from './helpers.js';

const resolver = InventoryResolver.fromPorts(PORTS);

test('network mode finds the instance by IP (v4 and v6)', async () => {
  assert.deepEqual(withoutPort(await resolver.resolve({ mode: 'network', id: NET, ip: '10.0.0.5' })), {
    instanceId: INSTANCE,
    projectId: PROJECT,
    cached: false,
  });
  assert.equal(
    (await resolver.resolve({ mode: 'network', id: NET, ip: '2001:db8::5' })).instanceId,
    INSTANCE,
  );
  assert.equal(
    (await resolver.resolve({ mode: 'network', id: NET, ip: '10.0.0.6' })).instanceId,
    'instance-b',
  );
});

test('router mode goes through the router interface to its networks', async () => {
  assert.equal((await resolver.resolve({ mode: 'router', id: ROUTER, ip: '10.0.0.5' })).instanceId, INSTANCE);
});

test('link-local IPv6: by MAC', async () => {
  const r = await resolver.resolve({
    mode: 'network',
    id: NET,
    ip: 'fe80::f816:3eff:febe:3d62',
    mac: 'fa:16:3e:be:3d:62',
  });
  assert.equal(r.instanceId, INSTANCE);
});

test('unknown address, unknown network, unknown router: 404 naming the network or router', async () => {
  await assert.rejects(resolver.resolve({ mode: 'network', id: NET, ip: '10.0.0.99' }), (e: unknown) => {
    assert.ok(e instanceof MetadataError);
    assert.equal(e.code, 'MDA_ERR_PORT_NOT_FOUND');
    assert.equal(e.message, `Instance was not found on network ${NET}.`);
    return true;
  });
  await assert.rejects(
    resolver.resolve({ mode: 'network', id: 'other', ip: '10.0.0.5' }),
    /not found on network other/,
  );
  await assert.rejects(
    resolver.resolve({ mode: 'router', id: 'r-x', ip: '10.0.0.5' }),
    /not found on router r-x\./,
  );
});

test('a port without a device does not count; two ports with a device are ambiguous', async () => {
  const ports = [
    ...PORTS,
    {
      id: 'dhcp',
      network_id: NET,
      fixed_ips: [{ ip_address: '10.0.0.7' }],
      device_id: '',
      device_owner: 'network:dhcp',
    },
    {
      id: 'dup1',
      network_id: NET,
      fixed_ips: [{ ip_address: '10.0.0.8' }],
      device_id: 'i1',
      project_id: 'p',
    },
    {
      id: 'dup2',
      network_id: NET,
      fixed_ips: [{ ip_address: '10.0.0.8' }],
      device_id: 'i2',
      project_id: 'p',
    },
  ];
  const r = InventoryResolver.fromPorts(ports);
  await assert.rejects(r.resolve({ mode: 'network', id: NET, ip: '10.0.0.7' }), {
    code: 'MDA_ERR_PORT_NOT_FOUND',
  });
  await assert.rejects(r.resolve({ mode: 'network', id: NET, ip: '10.0.0.8' }), (e: unknown) => {
    assert.ok(e instanceof MetadataError);
    assert.equal(e.code, 'MDA_ERR_PORT_AMBIGUOUS');
    assert.equal(e.status, 404);
    assert.deepEqual(e.details.ports, ['dup1', 'dup2']);
    return true;
  });
});

test("the address index: one port listing an address twice is one port; across a router's networks two are ambiguous", async () => {
  const NET2 = 'net-2';
  const r = InventoryResolver.fromPorts([
    ...PORTS,
    {
      id: 'twice',
      network_id: NET,
      fixed_ips: [{ ip_address: '10.0.0.9' }, { ip_address: '10.0.0.9' }],
      device_id: 'i9',
      project_id: 'p',
    },
    {
      id: 'rtr-2',
      network_id: NET2,
      fixed_ips: [{ ip_address: '10.1.0.1' }],
      device_id: ROUTER,
      device_owner: 'network:router_interface',
    },
    {
      id: 'other-net',
      network_id: NET2,
      fixed_ips: [{ ip_address: '10.0.0.5' }],
      device_id: 'i-other',
      project_id: 'p',
    },
  ]);
  assert.equal((await r.resolve({ mode: 'network', id: NET, ip: '10.0.0.9' })).instanceId, 'i9');
  // The same address on another network is that network's, never this one's.
  assert.equal((await r.resolve({ mode: 'network', id: NET, ip: '10.0.0.5' })).instanceId, INSTANCE);
  assert.equal((await r.resolve({ mode: 'network', id: NET2, ip: '10.0.0.5' })).instanceId, 'i-other');
  await assert.rejects(r.resolve({ mode: 'router', id: ROUTER, ip: '10.0.0.5' }), (e: unknown) => {
    assert.ok(e instanceof MetadataError);
    assert.equal(e.code, 'MDA_ERR_PORT_AMBIGUOUS');
    assert.deepEqual([...(e.details.ports as string[])].sort(), ['other-net', 'port-a']);
    return true;
  });
});

test('a bad inventory file is refused with the file and the entry named', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'inv.json');
  writeFileSync(
    file,
    JSON.stringify({ ports: [{ network_id: 'n', fixed_ips: [{ ip_address: '10.0.0.300' }] }] }),
  );
  await assert.rejects(InventoryResolver.fromFile(file), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /inv\.json: ports\[0\]: fixed_ips\[0\]\.ip_address is not an IP address/);
    return true;
  });
  await assert.rejects(InventoryResolver.fromFile(join(dir, 'missing.json')), /cannot read: ENOENT/);
  writeFileSync(file, '{ nope');
  await assert.rejects(InventoryResolver.fromFile(file), /not valid JSON/);
});
