/*
 * What a listener helper gives the daemon: for one namespace, a server handle per bind and the namespace's
 * identity, or a HelperError with an errno-style code. Every helper kind answers in these terms.
 */
import type { Server } from 'node:net';
import { type BindAddress, formatAddress } from '@nmp/common';
import type { HelperMessage } from './hand-over.js';
import type { NetnsId } from './namespace-id.js';

/** ip / nsenter: one Node helper per namespace; python: one helper per batch of namespaces. */
export type NetnsExec = 'ip' | 'nsenter' | 'python';

export interface ReceivedListener {
  readonly bind: BindAddress;
  readonly handle: Server;
  readonly address: string;
}

export interface HelperResult {
  readonly listeners: ReceivedListener[];
  readonly netns: NetnsId;
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

/** A 'listener' message and its handle, as the daemon keeps them. */
export function receivedListener(bind: BindAddress, m: HelperMessage, handle: Server): ReceivedListener {
  const address = formatAddress({
    address: String(m.address),
    family: String(m.family),
    port: Number(m.port),
  });
  return { bind, handle, address };
}

/** The identity a helper reported, as numbers. */
export function reportedNetns(id: NonNullable<HelperMessage['netns']>): NetnsId {
  return { dev: Number(id.dev), ino: Number(id.ino) };
}
