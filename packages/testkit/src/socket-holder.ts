/*
 * systemd's socket activation for tests (python/socket_holder.py with /usr/bin/python3): listening
 * sockets held by a process of their own, a service started with them as sd_listen_fds(3) passes them
 * (fd 3.., LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), restarted as `systemctl restart` would (SIGTERM, wait,
 * start again) while the sockets, and the connections waiting in their backlog, stay.
 *
 *   const holder = startSocketHolder(lab, ns, { unix: [path], name: 'metadata' }, [node, cli, ...]);
 *   await holder.started(1);      // the first service process runs
 *   holder.restart();             // SIGHUP: stop and start it again
 *   await holder.started(2);
 */
import { fileURLToPath } from 'node:url';
import type { NetnsLab, NsChild } from './netns.js';
import { DEBIAN_PYTHON } from './neutron-rpc.js';

export const SOCKET_HOLDER_SCRIPT = fileURLToPath(new URL('../../python/socket_holder.py', import.meta.url));

export interface HolderSockets {
  /** UNIX socket paths (mode 0666 unless `path,0600`). */
  readonly unix?: readonly string[];
  /** TCP HOST:PORT ([v6]:port), bound in the holder's namespace. */
  readonly tcp?: readonly string[];
  /** LISTEN_FDNAMES of every socket (FileDescriptorName=). */
  readonly name: string;
}

export interface SocketHolder {
  readonly child: NsChild;
  /** Resolves with the pid of the `n`-th service process started (1-based). */
  started(n: number, timeoutMs?: number): Promise<number>;
  /** Resolves with the exit status of the `n`-th one. */
  exited(n: number, timeoutMs?: number): Promise<number>;
  /** Restart the service (SIGHUP to the holder). */
  restart(): void;
  stop(): Promise<void>;
}

interface HolderEvent {
  readonly event: string;
  readonly pid?: number;
  readonly status?: number;
}

export function startSocketHolder(
  lab: NetnsLab,
  namespace: string | undefined,
  sockets: HolderSockets,
  command: readonly string[],
  env?: NodeJS.ProcessEnv,
): SocketHolder {
  const args = [SOCKET_HOLDER_SCRIPT];
  for (const u of sockets.unix ?? []) args.push('--unix', u);
  for (const t of sockets.tcp ?? []) args.push('--tcp', t);
  args.push('--name', sockets.name, '--', ...command);
  const child = lab.spawn(namespace, DEBIAN_PYTHON, args, env ? { env } : {});
  const events = (): HolderEvent[] =>
    child
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{"event"'))
      .map((l) => JSON.parse(l) as HolderEvent);
  const nth = async (kind: string, n: number, timeoutMs: number): Promise<HolderEvent> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = events().filter((x) => x.event === kind)[n - 1];
      if (e) return e;
      if (Date.now() > deadline)
        throw new Error(
          `socket holder: no ${kind} #${n} within ${timeoutMs} ms:\n${child.output().slice(-4000)}`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    child,
    started: async (n, timeoutMs = 20_000) => (await nth('started', n, timeoutMs)).pid!,
    exited: async (n, timeoutMs = 20_000) => (await nth('exited', n, timeoutMs)).status!,
    restart: () => child.process.kill('SIGHUP'),
    stop: () => child.stop(15_000),
  };
}
