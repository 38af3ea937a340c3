/*
 * The Node half of the batch helper (netns_exec = python). A Python process entered each namespace of
 * the batch in turn (setns), created the listening sockets there, came back and exec'd this program
 * with those descriptors open and the daemon's IPC channel inherited. Here each descriptor becomes a
 * net.Server and is handed to the daemon exactly as helper.ts hands over its own (hand-over.ts).
 *
 * Input: argv[2] = JSON {items: [{key, netns: {dev, ino}, fds: [..]} | {key, error: {code, message}}]}.
 * Messages: {op:'listener', key, index, address, family, port} + handle per descriptor,
 * {op:'item', key, netns} or {op:'item-error', key, code, message} per namespace, then {op:'done'}.
 */
import { closeSync } from 'node:fs';
import { handOver, listening, sendToDaemon } from './hand-over.js';

const PROGRAM = 'batch relay';

interface BatchItem {
  readonly key: string;
  readonly netns?: { readonly dev: number; readonly ino: number };
  readonly fds?: readonly number[];
  readonly error?: { readonly code: string; readonly message: string };
}

async function main(): Promise<void> {
  process.channel?.ref();
  const { items } = JSON.parse(process.argv[2] ?? '{"items":[]}') as { items: BatchItem[] };
  for (const item of items) {
    if (item.error || !item.fds || !item.netns) {
      await sendToDaemon(PROGRAM, {
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
        await handOver(PROGRAM, await listening({ fd }), { key: item.key, index });
      } catch (err) {
        failed = err as NodeJS.ErrnoException;
      }
    }
    if (failed)
      await sendToDaemon(PROGRAM, {
        op: 'item-error',
        key: item.key,
        code: failed.code ?? 'EHELPER',
        message: failed.message,
      });
    else await sendToDaemon(PROGRAM, { op: 'item', key: item.key, netns: item.netns });
  }
  await sendToDaemon(PROGRAM, { op: 'done' });
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${PROGRAM}: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => process.disconnect?.());
