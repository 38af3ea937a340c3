/*
 * Shared by the port cache's tests (stale answers, port_cache_max_age): one network and one router, the
 * lookups by each, and the identity a port answer carries.
 */
import type { InstanceIdentity, LookupQuery } from '@nmp/common';

export const NET = 'net-1';
export const ROUTER = 'router-1';
export const byNetwork = (ip: string): LookupQuery => ({ mode: 'network', id: NET, ip });
export const byRouter = (ip: string): LookupQuery => ({ mode: 'router', id: ROUTER, ip });
export const port = (vm: string, portId: string): InstanceIdentity => ({
  instanceId: vm,
  projectId: 'p',
  cached: false,
  portId,
  networkId: NET,
});
