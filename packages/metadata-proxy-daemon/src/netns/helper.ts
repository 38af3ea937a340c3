/*
 * The listener helper: a short-lived process started inside a namespace (`ip netns exec NS node
 * helper.js '<json>'`). It creates the listening sockets there, hands each to the daemon over the IPC
 * channel it was started with, and exits. A socket keeps the namespace it was created in, so the
 * daemon, which never leaves the root namespace, serves them all.
 *
 * Input: argv[2] = JSON [{host, port, backlog}]. Messages to the daemon, in order (hand-over.ts):
 *   {op:'listener', index, address, family, port} + the net.Server handle, once per bind;
 *   {op:'done', netns: {dev, ino}} (the namespace's identity, so the daemon can tell a replaced one);
 *   or {op:'error', index, code, message} and exit 1 (listeners already sent are the daemon's to close).
 * It imports nothing of ours but hand-over.ts: it is started once per attachment, and start-up time is
 * attach time.
 */
import { statSync } from 'node:fs';
import type { Server } from 'node:net';
import { handOver, listening, sendToDaemon } from './hand-over.js';

const PROGRAM = 'listener helper';

interface HelperBind {
  readonly host: string;
  readonly port: number;
  readonly backlog: number;
}

async function main(): Promise<void> {
  // A child's IPC channel does not keep it alive by itself; a handle's acknowledgement must still
  // arrive before the next message goes out.
  process.channel?.ref();
  const binds = JSON.parse(process.argv[2] ?? '[]') as HelperBind[];
  const ns = statSync('/proc/self/ns/net');
  for (const [index, b] of binds.entries()) {
    let server: Server;
    try {
      server = await listening({ host: b.host, port: b.port, backlog: b.backlog, ipv6Only: false });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      await sendToDaemon(PROGRAM, { op: 'error', index, code: e.code ?? 'EUNKNOWN', message: e.message });
      process.exitCode = 1;
      return;
    }
    await handOver(PROGRAM, server, { index });
  }
  await sendToDaemon(PROGRAM, { op: 'done', netns: { dev: ns.dev, ino: ns.ino } });
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${PROGRAM}: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => process.disconnect?.());
