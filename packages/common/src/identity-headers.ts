/*
 * The headers that carry identity along the chain, and the identity a proxy stamps. An instance must never
 * be able to set any of them: the proxy deletes every copy (any case, any count) before stamping its own.
 * This is the one place their names are spelled (lower case, as node hands them over and as the chain
 * sends them; neutron spells them X-Neutron-Network-ID, X-Neutron-Router-ID, X-OVN-Network-ID,
 * X-Forwarded-For, X-Instance-ID, X-Tenant-ID, X-Instance-ID-Signature, X-OpenStack-Request-ID).
 */

/** X-Neutron-Network-ID: stamped by a qdhcp-<network> namespace's proxy. */
export const HEADER_NETWORK_ID = 'x-neutron-network-id';
/** X-Neutron-Router-ID: stamped by a qrouter-<router> namespace's proxy. */
export const HEADER_ROUTER_ID = 'x-neutron-router-id';
/** X-OVN-Network-ID: stamped in ovnmeta-<network> namespaces (ML2/OVN); the agent reads it as a network-mode lookup. */
export const HEADER_OVN_NETWORK_ID = 'x-ovn-network-id';
/** X-Forwarded-For: the instance's address, set by the proxy from the TCP peer. */
export const HEADER_FORWARDED_FOR = 'x-forwarded-for';
/** X-OpenStack-Request-ID: the request id, set by the proxy and passed on to Nova. */
export const HEADER_REQUEST_ID = 'x-openstack-request-id';
/** X-Instance-ID, X-Tenant-ID and X-Instance-ID-Signature: what the agent tells Nova. */
export const HEADER_INSTANCE_ID = 'x-instance-id';
export const HEADER_TENANT_ID = 'x-tenant-id';
export const HEADER_SIGNATURE = 'x-instance-id-signature';
/** X-Metadata-Provider and its signature: Nova's provider mode (neutron's OVN agent may send them). */
export const HEADER_PROVIDER = 'x-metadata-provider';
export const HEADER_PROVIDER_SIGNATURE = 'x-metadata-provider-signature';
/** RFC 7239 Forwarded and X-Real-IP: other proxies' ways of naming a client, never let through. */
export const HEADER_FORWARDED = 'forwarded';
export const HEADER_REAL_IP = 'x-real-ip';

/**
 * Which id a proxy stamps: network and router for neutron's DHCP and L3 agents (qdhcp-, qrouter-
 * namespaces), ovn for an ovnmeta-<network> namespace of neutron's OVN metadata agent.
 */
export type IdentityMode = 'network' | 'router' | 'ovn';

/** Every identity mode, in the order the options and the docs list them. */
export const IDENTITY_MODES: readonly IdentityMode[] = Object.freeze(['network', 'router', 'ovn']);

/** The identity one proxy (or one attachment of the daemon) stamps on every request it forwards. */
export interface ProxyIdentity {
  readonly mode: IdentityMode;
  readonly id: string;
}

/** The header each mode stamps. */
export const IDENTITY_HEADER_NAME: Readonly<Record<IdentityMode, string>> = Object.freeze({
  network: HEADER_NETWORK_ID,
  router: HEADER_ROUTER_ID,
  ovn: HEADER_OVN_NETWORK_ID,
});

/** Lower-case names of every header that carries identity (DECISIONS.md, "Identity headers"). */
export const IDENTITY_HEADERS: ReadonlySet<string> = new Set([
  HEADER_FORWARDED_FOR,
  HEADER_NETWORK_ID,
  HEADER_ROUTER_ID,
  HEADER_INSTANCE_ID,
  HEADER_SIGNATURE,
  HEADER_TENANT_ID,
  HEADER_OVN_NETWORK_ID,
  HEADER_PROVIDER,
  HEADER_PROVIDER_SIGNATURE,
  HEADER_FORWARDED,
  HEADER_REAL_IP,
  HEADER_REQUEST_ID,
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
