/*
 * The instance-id signature that Nova checks: lowercase hex HMAC-SHA256 keyed with the shared secret
 * (reference.md §3.4, vectors in §12.1). Both the agent (signing) and the development Nova (checking) use it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function signInstanceId(secret: string, instanceId: string): string {
  return createHmac('sha256', secret).update(instanceId, 'utf8').digest('hex');
}

/** Constant-time check; an empty or wrong-length signature is simply false. */
export function verifyInstanceSignature(secret: string, instanceId: string, signature: string): boolean {
  const expected = Buffer.from(signInstanceId(secret, instanceId), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  if (given.length !== expected.length) {
    // Still spend a comparison so that the length check does not stand out in timing.
    timingSafeEqual(expected, expected);
    return false;
  }
  return timingSafeEqual(expected, given);
}
