/*
 * After binding (port 80 needs root), the proxy gives up root for metadata_proxy_user/group, as haproxy
 * does. Names or numeric ids are accepted. The group goes first: once the uid changes we no longer can.
 */
import { ConfigError } from '@nmp/common';

export function dropPrivileges(user: string, group: string): { uid: number; gid: number } {
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
