/*
 * The helpers' side of handing listening sockets to the daemon (helper.ts, batch-relay.ts): the messages, a
 * socket made ready from listen options or an inherited descriptor, and its hand-over over the IPC channel the
 * helper was started with. Node's own modules only: a helper's start-up time is attach time.
 *
 * Messages to the daemon (HelperMessage):
 *   {op:'listener', index, [key], address, family, port} + the net.Server handle, once per socket;
 *   helper.ts:       {op:'done', netns} or {op:'error', index, code, message};
 *   batch-relay.ts:  {op:'item', key, netns} or {op:'item-error', key, code, message} per namespace, then
 *                    {op:'done'}.
 */
import { createServer, type ListenOptions, type Server } from 'node:net';

export interface HelperMessage {
  readonly op?: string;
  /** The namespace of a batch's socket or result. */
  readonly key?: string;
  /** Which bind of the namespace a socket (or an error) is for. */
  readonly index?: number;
  readonly code?: string;
  readonly message?: string;
  readonly netns?: { readonly dev: number; readonly ino: number };
  readonly address?: string;
  readonly family?: string;
  readonly port?: number;
}

/** Send to the daemon (resolves once the message, and a handle, went out); `program` names us if we cannot. */
export function sendToDaemon(program: string, message: HelperMessage, handle?: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) {
      reject(new Error(`the ${program} must be started by the daemon (no IPC channel)`));
      return;
    }
    process.send(message, handle, {}, (err: Error | null) => (err ? reject(err) : resolve()));
  });
}

/** A listening server: new (host, port, backlog) or adopted from a descriptor ({fd}). */
export function listening(options: ListenOptions | { readonly fd: number }): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Hand `server` to the daemon as a 'listener' message, then close our descriptor (the daemon has its own). */
export async function handOver(
  program: string,
  server: Server,
  which: { readonly index: number; readonly key?: string },
): Promise<void> {
  const a = server.address();
  const address = typeof a === 'object' && a !== null ? a : undefined;
  await sendToDaemon(
    program,
    { op: 'listener', ...which, address: address?.address, family: address?.family, port: address?.port },
    server,
  );
  server.close();
}
