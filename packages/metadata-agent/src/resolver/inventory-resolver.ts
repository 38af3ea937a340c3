/*
 * A resolver over a static inventory file of Neutron ports, for development, tests and small labs.
 * Router mode follows Neutron's two steps: the router's interface ports give its networks, then the
 * address is looked up on those networks. The file is read once at start (and again on reload()).
 */
import { readFile } from 'node:fs/promises';
import {
  ConfigError,
  canonicalIp,
  type InstanceIdentity,
  type InstanceResolver,
  type LookupQuery,
  type NeutronPort,
  normaliseMac,
  ROUTER_INTERFACE_OWNERS,
} from '@nmp/common';
import { pickPort } from './port-match.js';

interface Indexed {
  /** `<network id> ip <address>` and `<network id> mac <mac>` -> the ports on that network with it */
  readonly byAddress: Map<string, NeutronPort[]>;
  /** router id -> networks it has interfaces on */
  readonly routerNetworks: Map<string, string[]>;
}

export class InventoryResolver implements InstanceResolver {
  #index: Indexed;

  private constructor(
    readonly file: string,
    index: Indexed,
  ) {
    this.#index = index;
  }

  static async fromFile(file: string): Promise<InventoryResolver> {
    return new InventoryResolver(file, await loadInventory(file));
  }

  static fromPorts(ports: readonly NeutronPort[], file = '<memory>'): InventoryResolver {
    return new InventoryResolver(file, indexPorts(validatePorts(ports, file)));
  }

  /** Re-read the file; on error the old inventory stays. */
  async reload(): Promise<void> {
    this.#index = await loadInventory(this.file);
  }

  async resolve(query: LookupQuery): Promise<InstanceIdentity> {
    const address = query.mac !== undefined ? `mac ${query.mac}` : `ip ${query.ip}`;
    const { byAddress, routerNetworks } = this.#index;
    if (query.mode === 'network') return pickPort(byAddress.get(`${query.id} ${address}`) ?? NONE, query);
    const matches: NeutronPort[] = [];
    for (const net of routerNetworks.get(query.id) ?? []) {
      for (const port of byAddress.get(`${net} ${address}`) ?? NONE) matches.push(port);
    }
    return pickPort(matches, query);
  }

  async close(): Promise<void> {}
}

async function loadInventory(file: string): Promise<Indexed> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `inventory file ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`inventory file ${file}: not valid JSON: ${(err as Error).message}`);
  }
  const ports = (doc as { ports?: unknown })?.ports;
  if (!Array.isArray(ports)) throw new ConfigError(`inventory file ${file}: expected {"ports": [...]}`);
  return indexPorts(validatePorts(ports, file));
}

function validatePorts(ports: readonly unknown[], file: string): NeutronPort[] {
  return ports.map((p, i) => {
    const fail = (why: string): never => {
      throw new ConfigError(`inventory file ${file}: ports[${i}]: ${why}`);
    };
    if (typeof p !== 'object' || p === null) return fail('not an object');
    const port = p as Record<string, unknown>;
    if (typeof port.network_id !== 'string' || port.network_id === '')
      fail('network_id must be a non-empty string');
    const fixed = port.fixed_ips ?? [];
    if (!Array.isArray(fixed)) return fail('fixed_ips must be a list');
    const fixedIps = fixed.map((f, j) => {
      const ip = (f as { ip_address?: unknown })?.ip_address;
      const canonical = typeof ip === 'string' ? canonicalIp(ip) : undefined;
      if (!canonical) return fail(`fixed_ips[${j}].ip_address is not an IP address`);
      return { ...(f as object), ip_address: canonical };
    });
    let mac: string | undefined;
    if (port.mac_address !== undefined) {
      mac = typeof port.mac_address === 'string' ? normaliseMac(port.mac_address) : undefined;
      if (!mac) fail('mac_address is not a MAC address');
    }
    for (const k of ['device_id', 'device_owner', 'project_id', 'tenant_id', 'id'] as const) {
      if (port[k] !== undefined && typeof port[k] !== 'string') fail(`${k} must be a string`);
    }
    return { ...(port as unknown as NeutronPort), fixed_ips: fixedIps, ...(mac ? { mac_address: mac } : {}) };
  });
}

const NONE: readonly NeutronPort[] = Object.freeze([]);

function indexPorts(ports: readonly NeutronPort[]): Indexed {
  const byAddress = new Map<string, NeutronPort[]>();
  const routerNetworks = new Map<string, string[]>();
  const add = (key: string, port: NeutronPort) => {
    const list = byAddress.get(key);
    if (list === undefined) byAddress.set(key, [port]);
    else if (!list.includes(port)) list.push(port);
  };
  for (const port of ports) {
    for (const f of port.fixed_ips ?? []) add(`${port.network_id} ip ${f.ip_address}`, port);
    if (port.mac_address !== undefined) add(`${port.network_id} mac ${port.mac_address}`, port);
    if (port.device_owner && ROUTER_INTERFACE_OWNERS.includes(port.device_owner) && port.device_id) {
      const nets = routerNetworks.get(port.device_id) ?? [];
      if (!nets.includes(port.network_id)) nets.push(port.network_id);
      routerNetworks.set(port.device_id, nets);
    }
  }
  return { byAddress, routerNetworks };
}
