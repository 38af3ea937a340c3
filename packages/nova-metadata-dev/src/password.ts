/*
 * The `password` document (reference.md §7.2, Nova's password.py): GET returns what was stored (empty
 * if nothing), POST stores the body once (409 when a password exists, 400 "Request is too large." above
 * 4 x 255 = 1020 bytes), and any other method, HEAD included, is 400 "GET and POST only are supported.".
 */
import type { IncomingMessage } from 'node:http';
import { PASSWORD_MAX_BYTES } from './instances.js';

export const MSG_TOO_LARGE = 'Request is too large.';
export const MSG_GET_AND_POST_ONLY = 'GET and POST only are supported.';

export type PasswordOutcome =
  | { readonly kind: 'stored'; readonly value: string }
  | { readonly kind: 'refused'; readonly status: number; readonly explanation: string | undefined };

const REFUSE_CONFLICT: PasswordOutcome = { kind: 'refused', status: 409, explanation: undefined };
const REFUSE_TOO_LARGE: PasswordOutcome = { kind: 'refused', status: 400, explanation: MSG_TOO_LARGE };
const REFUSE_METHOD: PasswordOutcome = { kind: 'refused', status: 400, explanation: MSG_GET_AND_POST_ONLY };
const REFUSE_NOT_TEXT: PasswordOutcome = {
  kind: 'refused',
  status: 500,
  explanation: 'An unknown error has occurred. Please try your request again.',
};

/** Checks that need no body: method, an existing password, a declared length over the limit. */
export function precheckPasswordWrite(
  req: IncomingMessage,
  current: string | undefined,
): PasswordOutcome | undefined {
  if (req.method !== 'POST') return REFUSE_METHOD;
  if (current) return REFUSE_CONFLICT;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > PASSWORD_MAX_BYTES) return REFUSE_TOO_LARGE;
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Read the POST body (keeping at most the limit plus one byte) and decide. Nova stores the body as text:
 * bytes that are not UTF-8 make it fail with a 500.
 */
export function readPasswordBody(
  req: IncomingMessage,
  currentNow: () => string | undefined,
  done: (outcome: PasswordOutcome) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    if (size <= PASSWORD_MAX_BYTES) chunks.push(chunk);
    size += chunk.length;
  });
  req.on('end', () => {
    if (size > PASSWORD_MAX_BYTES) return done(REFUSE_TOO_LARGE);
    // Two POSTs racing: the second one to finish finds the first one's password.
    if (currentNow()) return done(REFUSE_CONFLICT);
    let value: string;
    try {
      value = utf8.decode(Buffer.concat(chunks, size));
    } catch {
      return done(REFUSE_NOT_TEXT);
    }
    done({ kind: 'stored', value });
  });
}
