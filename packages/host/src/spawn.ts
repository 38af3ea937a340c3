/*
 * Every process nmp starts (a proxy, the daemon's serving worker, a listener helper, the haproxy drop-in's
 * proxy) starts here, and each gets our environment without its secrets (withoutSecrets: the shared secret,
 * the broker URL with its password, Keystone credentials, and the caller's own such variables). None of
 * those children needs one, and most of them handle instance traffic. One place, so that a new kind of
 * child cannot forget it.
 */
import { type ChildProcess, type ForkOptions, fork, type SpawnOptions, spawn } from 'node:child_process';
import { withoutSecrets } from '@nmp/common';

export type CleanSpawnOptions = Omit<SpawnOptions, 'env'>;
export type CleanForkOptions = Omit<ForkOptions, 'env'>;

/** spawn(argv[0], argv[1..]) with the environment stripped of secrets. */
export function spawnWithoutSecrets(argv: readonly string[], options: CleanSpawnOptions = {}): ChildProcess {
  return spawn(argv[0]!, argv.slice(1), { ...options, env: withoutSecrets(process.env) });
}

/** fork(module, args) (a node child with an IPC channel) with the environment stripped of secrets. */
export function forkWithoutSecrets(
  modulePath: string,
  args: readonly string[],
  options: CleanForkOptions = {},
): ChildProcess {
  return fork(modulePath, [...args], { ...options, env: withoutSecrets(process.env) });
}
