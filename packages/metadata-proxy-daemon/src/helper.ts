/*
 * The listener helper: a short-lived process started inside a namespace (`ip netns exec NS node
 * helper.js '<json>'`). It creates the listening sockets there, hands each to the daemon over the IPC
 * channel it was started with, and exits. A socket keeps the namespace it was created in, so the
 * daemon, which never leaves the root namespace, serves them all.
 *
 * Input: argv[2] = JSON [{host, port, backlog}]. Messages to the daemon, in order:
 *   {op:'listener', index, address, family, port} + the net.Server handle, once per bind;
 *   {op:'done', netns: {dev, ino}} (the namespace's identity, so the daemon can tell a replaced one);
 *   or {op:'error', index, code, message} and exit 1 (listeners already sent are the daemon's to close).
 * It imports nothing of ours: it is started once per attachment, and start-up time is attach time.
 */
import { statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

interface HelperBind {
  readonly host: string;
  readonly port: number;
  readonly backlog: number;
}

const send = (message: unknown, handle?: Server): Promise<void> =>
  new Promise((resolve, reject) => {
    if (!process.send) {
      reject(new Error('the listener helper must be started by the daemon (no IPC channel)'));
      return;
    }
    process.send(message, handle, {}, (err: Error | null) => (err ? reject(err) : resolve()));
  });

function listen(b: HelperBind): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: b.host, port: b.port, backlog: b.backlog, ipv6Only: false }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
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
      server = await listen(b);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      await send({ op: 'error', index, code: e.code ?? 'EUNKNOWN', message: e.message });
      process.exitCode = 1;
      return;
    }
    const a = server.address();
    const address = typeof a === 'object' && a !== null ? a : undefined;
    await send(
      { op: 'listener', index, address: address?.address, family: address?.family, port: address?.port },
      server,
    );
    // The daemon holds its own descriptor now.
    server.close();
  }
  await send({ op: 'done', netns: { dev: ns.dev, ino: ns.ino } });
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`listener helper: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => process.disconnect?.());
