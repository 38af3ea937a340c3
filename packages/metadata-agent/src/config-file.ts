/*
 * Files named by the configuration (PEM bundles, certificates, keys) are read once, while the settings are
 * built: a missing or unreadable one is a ConfigError naming the option and the path at start (exit 2, or a
 * failed reload), not a bare ENOENT from a constructor or a failing connection later. The error never
 * carries the file's contents.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '@nmp/common';

/** The text of the file `option` names (`option` as the operator writes it: `[neutron] cafile`). */
export function readConfigFile(option: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${option} ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

/**
 * Freeze `value` and every object and array reachable from it (the settings trees). Functions (a TLS
 * identity check, maybe node's own) are left as they are; nothing in a settings tree is a Buffer (files are
 * read as text for that reason).
 */
export function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value === 'object' && value !== null && !seen.has(value)) {
    seen.add(value);
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) {
      deepFreeze((value as Record<string | symbol, unknown>)[key], seen);
    }
  }
  return value;
}
