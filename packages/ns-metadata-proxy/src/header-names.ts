/*
 * The names the proxy's header code and its SSRF defences share: which header carries the identity of
 * each mode, and the session-token headers. A leaf: it imports nothing of ours, so header-policy.ts (which
 * drops the token headers) and ssrf/ (which reads them) both depend on it and not on each other.
 */

/** network/router: neutron's DHCP and L3 agents; ovn: an ovnmeta-<network> namespace of the OVN agent. */
export type ProxyMode = 'network' | 'router' | 'ovn';

export interface ProxyIdentity {
  readonly mode: ProxyMode;
  readonly id: string;
}

/** The header the proxy stamps in each mode (lower case). */
export const IDENTITY_HEADER_NAME: Readonly<Record<ProxyMode, string>> = {
  network: 'x-neutron-network-id',
  router: 'x-neutron-router-id',
  ovn: 'x-ovn-network-id',
};

/** Header names as EC2 spells them (the token answer's TTL header is matched by the hop-limit rule). */
export const TOKEN_HEADER = 'X-aws-ec2-metadata-token';
export const TOKEN_TTL_HEADER = 'X-aws-ec2-metadata-token-ttl-seconds';

/**
 * Request headers that never reach the agent or Nova, whatever the token mode: header-policy's
 * agentRequestHeaders drops them along with the identity headers.
 */
export const TOKEN_HEADERS: ReadonlySet<string> = new Set([
  TOKEN_HEADER.toLowerCase(),
  TOKEN_TTL_HEADER.toLowerCase(),
]);
