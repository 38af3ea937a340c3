/*
 * The one rule for turning candidate ports into an instance, shared by every resolver (DECISIONS.md,
 * "Lookup"): exactly one port with a non-empty device_id matches; none or several is a 404 whose log line
 * says which case it was. Ports are Neutron API port objects (or the inventory's copy of them).
 */
import { type InstanceIdentity, type LookupQuery, MetadataError, type NeutronPort } from '@nmp/common';

/** What the 404 says the instance was not found on: "network <id>" or "router <id>". */
export function lookupTarget(query: Pick<LookupQuery, 'mode' | 'id'>): string {
  return `${query.mode} ${query.id}`;
}

/**
 * Pick the instance from the ports that matched the query's address on the query's networks.
 * Ports without a device are not instances and never count.
 */
export function pickPort(ports: readonly NeutronPort[], query: LookupQuery): InstanceIdentity {
  // The common case (one port) allocates nothing but the answer: this runs on every uncached lookup.
  let port: NeutronPort | undefined;
  let found = 0;
  for (const p of ports) {
    if (!hasDevice(p)) continue;
    if (found++ === 0) port = p;
  }
  if (found !== 1 || port === undefined) throw notOne(ports, query, found);
  const instanceId = port.device_id!;
  const projectId = port.project_id ?? port.tenant_id ?? '';
  return port.id !== undefined
    ? { instanceId, projectId, cached: false, portId: port.id, networkId: port.network_id }
    : { instanceId, projectId, cached: false, networkId: port.network_id };
}

const hasDevice = (p: NeutronPort): boolean => typeof p.device_id === 'string' && p.device_id !== '';

/** The 404 for no port with a device (found = 0) or several. */
function notOne(ports: readonly NeutronPort[], query: LookupQuery, found: number): MetadataError {
  const details = {
    target: lookupTarget(query),
    [query.mode]: query.id,
    ip: query.ip,
    ...(query.mac ? { mac: query.mac } : {}),
  };
  if (found === 0)
    return new MetadataError('MDA_ERR_PORT_NOT_FOUND', { ...details, case: 'no port with a device' });
  return new MetadataError('MDA_ERR_PORT_AMBIGUOUS', {
    ...details,
    case: 'several ports',
    ports: ports.filter(hasDevice).map((p) => p.id ?? '?'),
  });
}
