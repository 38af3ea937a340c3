/*
 * Preparing the agent's UNIX socket path as neutron does (directory created, stale socket removed), but
 * refusing to steal the path from an agent that is still listening there, and never deleting a non-socket.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { ConfigError } from '@nmp/common';

/** `option` names the setting in error messages. */
export async function prepareSocketPath(path: string, option = 'metadata_proxy_socket'): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new ConfigError(`${option} ${path} exists and is not a socket; refusing to remove it`);
  if (await someoneListens(path)) {
    throw new ConfigError(`${option} ${path}: another process is listening there (is an agent running?)`);
  }
  await unlink(path);
}

function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function setSocketMode(path: string, mode: number): Promise<void> {
  await chmod(path, mode);
}
