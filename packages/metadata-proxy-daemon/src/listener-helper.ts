/*
 * Getting listening sockets out of a namespace: start helper.js inside it with an IPC channel, collect
 * the server handles it sends, and make sure none leaks when anything goes wrong (bind error, helper
 * crash, timeout: every handle received so far is closed and the helper killed).
 */
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type BindAddress, formatAddress, listenHost, withoutSecrets } from '@nmp/common';

export const HELPER_PATH = fileURLToPath(new URL('./helper.js', import.meta.url));

/** ip / nsenter: one Node helper per namespace; python: one helper per batch of namespaces. */
export type NetnsExec = 'ip' | 'nsenter' | 'python';

/** Identity of a network namespace: the nsfs inode behind /run/netns/<name>. */
export interface NetnsId {
  readonly dev: number;
  readonly ino: number;
}

export interface ReceivedListener {
  readonly bind: BindAddress;
  readonly handle: Server;
  readonly address: string;
}

export interface HelperResult {
  readonly listeners: ReceivedListener[];
  readonly netns: NetnsId;
}

export interface HelperOptions {
  readonly namespace: string;
  readonly binds: readonly BindAddress[];
  readonly backlog: number;
  readonly netnsExec: 'ip' | 'nsenter';
  readonly timeoutMs: number;
}

export class HelperError extends Error {
  constructor(
    message: string,
    /** errno-style code: EADDRNOTAVAIL, EADDRINUSE, ENONS (namespace gone), ETIMEDOUT, EHELPER. */
    readonly code: string,
  ) {
    super(message);
    this.name = 'HelperError';
  }
}

export const NETNS_DIR = '/run/netns';

/** The namespace's identity, or undefined when /run/netns/<name> is gone. */
export function namespaceId(namespace: string): NetnsId | undefined {
  try {
    const s = statSync(`${NETNS_DIR}/${namespace}`);
    return { dev: s.dev, ino: s.ino };
  } catch {
    return undefined;
  }
}

function enterCommand(how: 'ip' | 'nsenter', namespace: string): string[] {
  return how === 'ip'
    ? ['ip', 'netns', 'exec', namespace]
    : ['nsenter', `--net=${NETNS_DIR}/${namespace}`, '--'];
}

export function runListenerHelper(o: HelperOptions): Promise<HelperResult> {
  const argv = [
    ...enterCommand(o.netnsExec, o.namespace),
    process.execPath,
    HELPER_PATH,
    JSON.stringify(o.binds.map((b) => ({ host: listenHost(b), port: b.port, backlog: o.backlog }))),
  ];
  return new Promise((resolve, reject) => {
    const listeners: ReceivedListener[] = [];
    let netns: NetnsId | undefined;
    let failure: HelperError | undefined;
    let stderr = '';
    let settled = false;
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
      env: withoutSecrets(process.env),
    });
    const finish = (err?: HelperError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err || netns === undefined || listeners.length !== o.binds.length) {
        for (const l of listeners) l.handle.close();
        reject(
          err ??
            new HelperError(
              `listener helper in ${o.namespace} ended without handing over its sockets` +
                (stderr.trim() ? `: ${stderr.trim().slice(0, 500)}` : ''),
              /Cannot open network namespace|No such file/i.test(stderr) ? 'ENONS' : 'EHELPER',
            ),
        );
        return;
      }
      resolve({ listeners, netns });
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(
        new HelperError(`listener helper in ${o.namespace} took longer than ${o.timeoutMs} ms`, 'ETIMEDOUT'),
      );
    }, o.timeoutMs);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => {
      if (stderr.length < 4096) stderr += c;
    });
    child.on(
      'message',
      (
        m: {
          op?: string;
          index?: number;
          code?: string;
          message?: string;
          netns?: NetnsId;
          address?: string;
          family?: string;
          port?: number;
        },
        handle: unknown,
      ) => {
        if (m.op === 'listener' && handle && typeof m.index === 'number' && o.binds[m.index]) {
          if (settled) {
            (handle as Server).close();
            return;
          }
          const address = formatAddress({
            address: String(m.address),
            family: String(m.family),
            port: Number(m.port),
          });
          listeners.push({ bind: o.binds[m.index]!, handle: handle as Server, address });
        } else if (m.op === 'done' && m.netns) {
          netns = { dev: Number(m.netns.dev), ino: Number(m.netns.ino) };
        } else if (m.op === 'error') {
          const bind = typeof m.index === 'number' ? o.binds[m.index]?.spec : undefined;
          failure = new HelperError(
            `cannot listen on ${bind ?? '?'} in ${o.namespace}: ${m.code ?? ''} ${m.message ?? ''}`.trim(),
            m.code ?? 'EHELPER',
          );
        }
      },
    );
    child.once('error', (err) =>
      finish(new HelperError(`cannot start the listener helper: ${err.message}`, 'EHELPER')),
    );
    // 'close' comes after the last message and the stderr end.
    child.once('close', () => finish(failure));
  });
}
