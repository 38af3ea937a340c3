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
  const withDevice = ports.filter((p) => typeof p.device_id === 'string' && p.device_id !== '');
  const details = {
    target: lookupTarget(query),
    [query.mode]: query.id,
    ip: query.ip,
    ...(query.mac ? { mac: query.mac } : {}),
  };
  if (withDevice.length === 0) {
    throw new MetadataError('MDA_ERR_PORT_NOT_FOUND', { ...details, case: 'no port with a device' });
  }
  if (withDevice.length > 1) {
    throw new MetadataError('MDA_ERR_PORT_AMBIGUOUS', {
      ...details,
      case: 'several ports',
      ports: withDevice.map((p) => p.id ?? '?'),
    });
  }
  const port = withDevice[0]!;
  const projectId = port.project_id ?? port.tenant_id ?? '';
  return {
    instanceId: port.device_id!,
    projectId,
    cached: false,
    ...(port.id !== undefined ? { portId: port.id } : {}),
    networkId: port.network_id,
  };
}
