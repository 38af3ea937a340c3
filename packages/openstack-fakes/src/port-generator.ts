/*
 * Synthetic Neutron topologies for tests and benchmarks: N networks, each with a DHCP port, a router
 * interface (all networks on one router), and M instance ports with predictable ids, addresses and
 * MACs (EUI-64 friendly fa:16:3e:..), so a boot storm of thousands of instances is one call away.
 */
import type { FakePort } from './neutron-ports.js';

export interface GeneratedInstance {
  readonly instanceId: string;
  readonly projectId: string;
  readonly networkId: string;
  readonly portId: string;
  readonly ip: string;
  readonly mac: string;
}

export interface GeneratedTopology {
  readonly ports: FakePort[];
  readonly networks: string[];
  readonly routerId: string;
  readonly instances: GeneratedInstance[];
}

export interface GenerateOptions {
  /** Networks (at most 256; default 1). */
  readonly networks?: number;
  /** Instances per network (at most 65,000; default 50). */
  readonly instancesPerNetwork?: number;
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** A UUID-shaped id from a kind (1 hex digit) and a number. */
export function fakeUuid(kind: number, n: number): string {
  return `${hex(kind, 8)}-0000-4000-8000-${hex(n, 12)}`;
}

export function generatePorts(options: GenerateOptions = {}): GeneratedTopology {
  const nets = options.networks ?? 1;
  const per = options.instancesPerNetwork ?? 50;
  if (nets < 1 || nets > 256) throw new RangeError('networks must be 1..256');
  if (per < 0 || per > 65_000) throw new RangeError('instancesPerNetwork must be 0..65000');
  const routerId = fakeUuid(0xa, 1);
  const ports: FakePort[] = [];
  const networks: string[] = [];
  const instances: GeneratedInstance[] = [];
  for (let i = 0; i < nets; i++) {
    const networkId = fakeUuid(0x1, i);
    const projectId = `${hex(0xc0ffee, 6)}${hex(i, 26)}`;
    networks.push(networkId);
    ports.push({
      id: fakeUuid(0x2, i),
      network_id: networkId,
      mac_address: `fa:16:3e:ff:${hex(i, 2)}:01`,
      fixed_ips: [{ ip_address: `10.${i}.0.1`, subnet_id: fakeUuid(0x5, i) }],
      device_id: routerId,
      device_owner: 'network:router_interface',
      project_id: projectId,
    });
    ports.push({
      id: fakeUuid(0x3, i),
      network_id: networkId,
      mac_address: `fa:16:3e:ff:${hex(i, 2)}:02`,
      fixed_ips: [{ ip_address: `10.${i}.0.2`, subnet_id: fakeUuid(0x5, i) }],
      device_id: `dhcp${hex(i, 8)}-${networkId}`,
      device_owner: 'network:dhcp',
      project_id: projectId,
    });
    for (let j = 0; j < per; j++) {
      const host = j + 10;
      const n = i * 65_536 + j;
      const inst: GeneratedInstance = {
        instanceId: fakeUuid(0x4, n),
        projectId,
        networkId,
        portId: fakeUuid(0x6, n),
        ip: `10.${i}.${host >> 8}.${host & 255}`,
        mac: `fa:16:3e:${hex(i, 2)}:${hex(j >> 8, 2)}:${hex(j & 255, 2)}`,
      };
      instances.push(inst);
      ports.push({
        id: inst.portId,
        network_id: networkId,
        mac_address: inst.mac,
        fixed_ips: [{ ip_address: inst.ip, subnet_id: fakeUuid(0x5, i) }],
        device_id: inst.instanceId,
        device_owner: 'compute:nova',
        project_id: projectId,
      });
    }
  }
  return { ports, networks, routerId, instances };
}
