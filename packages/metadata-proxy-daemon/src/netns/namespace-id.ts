/*
 * A named network namespace's identity: the nsfs inode behind /run/netns/<name>. A namespace deleted and
 * created again under the same name has another one, which is how the daemon tells that its listeners
 * belong to one that is gone.
 */
import { statSync } from 'node:fs';

export const NETNS_DIR = '/run/netns';

export interface NetnsId {
  readonly dev: number;
  readonly ino: number;
}

/** The namespace's identity, or undefined when /run/netns/<name> is gone. */
export function namespaceId(namespace: string): NetnsId | undefined {
  try {
    const s = statSync(`${NETNS_DIR}/${namespace}`);
    return { dev: s.dev, ino: s.ino };
  } catch {
    return undefined;
  }
}
