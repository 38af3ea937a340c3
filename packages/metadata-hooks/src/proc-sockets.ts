/*
 * Which TCP addresses a process listens on, read from /proc: the socket inodes among /proc/<pid>/fd,
 * matched against the LISTEN rows of /proc/<pid>/net/tcp and tcp6 (which show the process's own network
 * namespace). No `ss`, no entering the namespace, and it works for a proxy that dropped to `nobody`.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { SocketAddress } from 'node:net';
import { formatHostPort } from '@nmp/common';

export interface ListeningSocket {
  /** Canonical text form (`0.0.0.0`, `::`, `fe80::a9fe:a9fe`). */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

const TCP_LISTEN = '0A';

/** Decode /proc/net/tcp{,6}'s hex address (each 32-bit word in host byte order, little-endian here). */
export function decodeProcAddress(hex: string): string {
  if (hex.length === 8) {
    const b = Buffer.from(hex, 'hex').reverse();
    return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  }
  if (hex.length !== 32) throw new Error(`unexpected address '${hex}'`);
  const bytes = Buffer.alloc(16);
  for (let w = 0; w < 4; w++)
    Buffer.from(hex.slice(w * 8, w * 8 + 8), 'hex')
      .reverse()
      .copy(bytes, w * 4);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

/** LISTEN rows of a /proc/net/tcp{,6} text: inode -> socket. */
export function parseProcNetTcp(text: string, family: 4 | 6): Map<string, ListeningSocket> {
  const out = new Map<string, ListeningSocket>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
    const [addr, port] = f[1]!.split(':') as [string, string];
    out.set(f[9]!, { address: decodeProcAddress(addr), port: Number.parseInt(port, 16), family });
  }
  return out;
}

/** TCP sockets process `pid` listens on; [] when the process is gone or unreadable. */
export function listeningSockets(pid: number): ListeningSocket[] {
  let inodes: Set<string>;
  try {
    inodes = new Set();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        // fd closed meanwhile
      }
    }
  } catch {
    return [];
  }
  const out: ListeningSocket[] = [];
  for (const [file, family] of [
    ['tcp', 4],
    ['tcp6', 6],
  ] as const) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const [inode, s] of parseProcNetTcp(text, family)) if (inodes.has(inode)) out.push(s);
  }
  return out;
}

/** `169.254.169.254:80`, `[fe80::a9fe:a9fe]:80`. */
export function formatSocket(s: { address: string; port: number }): string {
  return formatHostPort(s.address, s.port);
}
