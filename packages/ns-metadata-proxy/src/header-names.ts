/*
 * The session-token header names the proxy's header code and its SSRF defences share. A leaf: it imports
 * nothing of the proxy's, so header-policy.ts (which drops the token headers) and ssrf/ (which reads them)
 * both depend on it and not on each other. The identity headers and modes are @nmp/common's
 * (identity-headers.ts).
 */

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
