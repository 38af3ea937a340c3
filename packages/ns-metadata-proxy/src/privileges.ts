/*
 * After binding (port 80 needs root), the proxy gives up root for metadata_proxy_user/group, as haproxy
 * does. Names or numeric ids are accepted. The group goes first: once the uid changes we no longer can.
 */
import { execFileSync } from 'node:child_process';
import { ConfigError } from '@nmp/common';

export function dropPrivileges(user: string, group: string): { uid: number; gid: number } {
  if (process.getuid?.() !== 0) return alreadyDropped(user, group);
  if (group !== '') {
    try {
      const gid = /^\d+$/.test(group) ? Number(group) : group;
      process.setgroups?.([gid]);
      process.setgid?.(gid);
    } catch (err) {
      throw new ConfigError(`Invalid group/gid: '${group}' (${(err as Error).message})`);
    }
  }
  if (user !== '') {
    try {
      const uid = /^\d+$/.test(user) ? Number(user) : user;
      if (group === '') process.setgroups?.([]);
      process.setuid?.(uid);
    } catch (err) {
      throw new ConfigError(`Invalid user/uid: '${user}' (${(err as Error).message})`);
    }
  }
  return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
}

/**
 * Not root: nothing can be given up, and that is right when this process already runs as the user and
 * group asked for (a hand-over's successor, started by a proxy that dropped root before). Anything else
 * is refused rather than run with the wrong identity.
 */
function alreadyDropped(user: string, group: string): { uid: number; gid: number } {
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  if (user !== '' && idOf('passwd', user) !== uid)
    throw new ConfigError(`cannot become user '${user}': not running as root (uid ${uid})`);
  if (group !== '' && idOf('group', group) !== gid)
    throw new ConfigError(`cannot become group '${group}': not running as root (gid ${gid})`);
  return { uid, gid };
}

function idOf(db: 'passwd' | 'group', name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  try {
    return Number(execFileSync('getent', [db, name], { encoding: 'utf8' }).split(':')[2]);
  } catch {
    return undefined;
  }
}
