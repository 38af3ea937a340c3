/*
 * The headers that carry identity along the chain. An instance must never be able to set any of them:
 * the proxy deletes every copy (any case, any count) before stamping its own.
 */

/** Lower-case names of every header that carries identity (DECISIONS.md, "Identity headers"). */
export const IDENTITY_HEADERS: ReadonlySet<string> = new Set([
  'x-forwarded-for',
  'x-neutron-network-id',
  'x-neutron-router-id',
  'x-instance-id',
  'x-instance-id-signature',
  'x-tenant-id',
  'x-ovn-network-id',
  'x-metadata-provider',
  'x-metadata-provider-signature',
  'forwarded',
  'x-real-ip',
  'x-openstack-request-id',
]);

/** Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy never forwards. */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export const HEADER_NETWORK_ID = 'x-neutron-network-id';
export const HEADER_ROUTER_ID = 'x-neutron-router-id';
/** Stamped in ovnmeta-<network> namespaces (ML2/OVN); the agent reads it as a network-mode lookup. */
export const HEADER_OVN_NETWORK_ID = 'x-ovn-network-id';
export const HEADER_FORWARDED_FOR = 'x-forwarded-for';
export const HEADER_REQUEST_ID = 'x-openstack-request-id';
export const HEADER_INSTANCE_ID = 'x-instance-id';
export const HEADER_TENANT_ID = 'x-tenant-id';
export const HEADER_SIGNATURE = 'x-instance-id-signature';
