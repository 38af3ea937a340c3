/* How a listening socket is named in status, logs and answers. */
import type { AddressInfo } from 'node:net';

/**
 * `127.0.0.1:80`, `[::]:9697`, `[fe80::a9fe:a9fe]:80`: how listeners are shown everywhere (as /proc shows
 * them). A link-local zone is left out: outside the socket's namespace the kernel's interface index would
 * be resolved to the name of an unrelated device; the bind specification names the right one.
 */
export function formatAddress(a: Pick<AddressInfo, 'address' | 'family' | 'port'> | string | null): string {
  if (a === null || typeof a === 'string') return String(a);
  if (a.family !== 'IPv6') return `${a.address}:${a.port}`;
  const pct = a.address.indexOf('%');
  return `[${pct === -1 ? a.address : a.address.slice(0, pct)}]:${a.port}`;
}
