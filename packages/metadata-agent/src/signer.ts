/*
 * Signs instance ids for Nova. A signature depends only on the secret and the id, so it is computed once
 * per instance and kept (bounded); a new secret (SIGHUP) empties the cache.
 */
import { signInstanceId } from '@nmp/common';

const MAX_ENTRIES = 50_000;

export class InstanceSigner {
  #secret: string;
  readonly #cache = new Map<string, string>();

  constructor(secret: string) {
    this.#secret = secret;
  }

  sign(instanceId: string): string {
    let sig = this.#cache.get(instanceId);
    if (sig === undefined) {
      sig = signInstanceId(this.#secret, instanceId);
      if (this.#cache.size >= MAX_ENTRIES) this.#cache.clear();
      this.#cache.set(instanceId, sig);
    }
    return sig;
  }

  setSecret(secret: string): void {
    if (secret === this.#secret) return;
    this.#secret = secret;
    this.#cache.clear();
  }
}
