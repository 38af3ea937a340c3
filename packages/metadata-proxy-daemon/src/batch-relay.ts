/*
 * The Node half of the batch helper (netns_exec = python). A Python process entered each namespace of
 * the batch in turn (setns), created the listening sockets there, came back and exec'd this program
 * with those descriptors open and the daemon's IPC channel inherited. Here each descriptor becomes a
 * net.Server and is handed to the daemon exactly as helper.ts hands over its own.
 *
 * Input: argv[2] = JSON {items: [{key, netns: {dev, ino}, fds: [..]} | {key, error: {code, message}}]}.
 * Messages: {op:'listener', key, index, address, family, port} + handle per descriptor,
 * {op:'item', key, netns} or {op:'item-error', key, code, message} per namespace, then {op:'done'}.
 */
import { closeSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

interface BatchItem {
  readonly key: string;
  readonly netns?: { readonly dev: number; readonly ino: number };
  readonly fds?: readonly number[];
  readonly error?: { readonly code: string; readonly message: string };
}

const send = (message: unknown, handle?: Server): Promise<void> =>
  new Promise((resolve, reject) => {
    if (!process.send) {
      reject(new Error('the batch relay must be started by the daemon (no IPC channel)'));
      return;
    }
    process.send(message, handle, {}, (err: Error | null) => (err ? reject(err) : resolve()));
  });

function adopt(fd: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

async function main(): Promise<void> {
  process.channel?.ref();
  const { items } = JSON.parse(process.argv[2] ?? '{"items":[]}') as { items: BatchItem[] };
  for (const item of items) {
    if (item.error || !item.fds || !item.netns) {
      await send({
        op: 'item-error',
        key: item.key,
        ...(item.error ?? { code: 'EHELPER', message: 'no sockets' }),
      });
      continue;
    }
    let failed: NodeJS.ErrnoException | undefined;
    for (const [index, fd] of item.fds.entries()) {
      if (failed) {
        closeSync(fd);
        continue;
      }
      try {
        const server = await adopt(fd);
        const a = server.address();
        const address = typeof a === 'object' && a !== null ? a : undefined;
        await send(
          {
            op: 'listener',
            key: item.key,
            index,
            address: address?.address,
            family: address?.family,
            port: address?.port,
          },
          server,
        );
        server.close();
      } catch (err) {
        failed = err as NodeJS.ErrnoException;
      }
    }
    if (failed)
      await send({
        op: 'item-error',
        key: item.key,
        code: failed.code ?? 'EHELPER',
        message: failed.message,
      });
    else await send({ op: 'item', key: item.key, netns: item.netns });
  }
  await send({ op: 'done' });
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`batch relay: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => process.disconnect?.());
