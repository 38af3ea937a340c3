/*
 * The sample data other packages build on: instances A, B, C as documented, and a Neutron port inventory
 * that maps every instance address (and A's EUI-64 link-local address, by MAC) to the right instance.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { canonicalIp, macFromEui64 } from '@nmp/common';
import { SAMPLE_INVENTORY_FILE } from '../src/index.js';
import { A, B, C, C_PROJECT, PROJECT, SAMPLE } from './helpers.js';

const NETWORK = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
const ROUTER = '5a8b1c2d-0000-4000-8000-00000000a001';

interface Port {
  id: string;
  network_id: string;
  mac_address: string;
  fixed_ips: Array<{ subnet_id: string; ip_address: string }>;
  device_id: string;
  device_owner: string;
  project_id: string;
}

const inventory = JSON.parse(readFileSync(SAMPLE_INVENTORY_FILE, 'utf8')) as { ports: Port[] };

test('instances A, B, C as documented', () => {
  const [a, b, c] = SAMPLE;
  assert.equal(a!.uuid, A);
  assert.equal(a!.project_id, PROJECT);
  assert.deepEqual(a!.fixed_ips, ['127.0.0.1', '::1']);
  assert.match(a!.user_data!, /^#cloud-config\n/);
  assert.ok(a!.public_keys?.mykey?.startsWith('ssh-ed25519 '));
  assert.equal(b!.uuid, B);
  assert.deepEqual(b!.fixed_ips, ['127.0.0.2']);
  assert.match(gunzipSync(Buffer.from(b!.user_data_base64!, 'base64')).toString(), /^#cloud-config\n/);
  assert.equal(c!.uuid, C);
  assert.equal(c!.project_id, C_PROJECT);
  assert.deepEqual(c!.fixed_ips, ['127.0.0.3']);
  const bytes = Buffer.from(c!.user_data_base64!, 'base64');
  assert.deepEqual(
    [...bytes],
    Array.from({ length: 256 }, (_, i) => i),
  );
});

test('inventory: one port per instance, same project and addresses, fa:16:3e MACs', () => {
  for (const spec of SAMPLE) {
    const ports = inventory.ports.filter((p) => p.device_id === spec.uuid);
    assert.equal(ports.length, 1, spec.uuid);
    const port = ports[0]!;
    assert.equal(port.network_id, NETWORK);
    assert.equal(port.project_id, spec.project_id);
    assert.match(port.device_owner, /^compute:/);
    assert.match(port.mac_address, /^fa:16:3e(:[0-9a-f]{2}){3}$/);
    assert.deepEqual(
      port.fixed_ips.map((f) => canonicalIp(f.ip_address)),
      (spec.fixed_ips ?? []).map((ip) => canonicalIp(ip)),
    );
  }
});

test('inventory: router interface and DHCP port on the network, no address used twice', () => {
  const router = inventory.ports.filter((p) => p.device_owner === 'network:router_interface');
  assert.equal(router.length, 1);
  assert.equal(router[0]!.device_id, ROUTER);
  assert.equal(router[0]!.network_id, NETWORK);
  const dhcp = inventory.ports.filter((p) => p.device_owner === 'network:dhcp');
  assert.equal(dhcp.length, 1);
  assert.match(dhcp[0]!.device_id, /^dhcp/);
  const ips = inventory.ports.flatMap((p) => p.fixed_ips.map((f) => canonicalIp(f.ip_address)));
  assert.equal(new Set(ips).size, ips.length);
  assert.ok(!ips.includes('127.0.0.9'), '127.0.0.9 stays free for "no port" tests');
  const macs = inventory.ports.map((p) => p.mac_address);
  assert.equal(new Set(macs).size, macs.length);
});

test("A's EUI-64 link-local address maps to A's port by MAC", () => {
  const mac = macFromEui64('fe80::f816:3eff:febe:3d62');
  const port = inventory.ports.filter((p) => p.mac_address === mac);
  assert.equal(port.length, 1);
  assert.equal(port[0]!.device_id, A);
});
