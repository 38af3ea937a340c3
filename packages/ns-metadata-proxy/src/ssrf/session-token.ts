/*
 * Session tokens in the style of EC2's IMDSv2, without a token store: a token is
 *
 *   base64url( version (1 byte) | expiry (8 bytes, ms since the epoch, big-endian) | mac (32 bytes) )
 *   mac = HMAC-SHA256(node key, version | expiry | source address | 0 | mode | 0 | id)
 *
 * so it is valid only for the source address that asked for it, at the proxy of the same network or router
 * (mode + id), until its expiry; nothing is remembered per token, so a flood of token requests costs no
 * memory. The node key is 32 random bytes made at start, or read from a file so that several proxies on a
 * node, and a restarted daemon, accept each other's tokens. Rotating the key revokes every token at once
 * (clients ask for a new one after a 401). Verification is constant time in the MAC and reports `expired`
 * only for a token this key really issued, so an expired answer never confirms a forgery.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import type { IdentityMode, ProgramErrorCode } from '@nmp/common';

export const TOKEN_VERSION = 1;
/** Bytes of key material the node key has (and the least a key file must hold). */
export const NODE_KEY_BYTES = 32;
/** EC2's bounds for X-aws-ec2-metadata-token-ttl-seconds. */
export const TOKEN_TTL_MIN = 1;
export const TOKEN_TTL_MAX = 21_600;

const MAC_BYTES = 32;
const RAW_BYTES = 1 + 8 + MAC_BYTES;
/** base64url of RAW_BYTES without padding. */
const TOKEN_CHARS = Math.ceil((RAW_BYTES * 4) / 3);
const TOKEN_RE = /^[A-Za-z0-9_-]+$/;

/** What a token is bound to besides its expiry. */
export interface TokenBinding {
  /** The source address as the proxy stamps it in X-Forwarded-For (zone removed, IPv4-mapped unwrapped). */
  readonly source: string;
  readonly mode: IdentityMode;
  readonly id: string;
}

export type TokenCheck = 'valid' | 'invalid' | 'expired';

export class SessionTokens {
  readonly #key: Buffer;
  readonly #now: () => number;

  /** `now` (ms since the epoch) is for tests; tokens outlive processes, so it is wall-clock time. */
  constructor(key: Buffer, now: () => number = Date.now) {
    if (key.length < NODE_KEY_BYTES)
      throw new RangeError(`node key must have at least ${NODE_KEY_BYTES} bytes`);
    this.#key = Buffer.from(key);
    this.#now = now;
  }

  /** A token for `binding` that expires `ttlSeconds` from now (1-21600, checked by the caller's policy). */
  issue(binding: TokenBinding, ttlSeconds: number): string {
    const raw = Buffer.allocUnsafe(RAW_BYTES);
    raw[0] = TOKEN_VERSION;
    raw.writeBigUInt64BE(BigInt(this.#now() + ttlSeconds * 1000), 1);
    this.#mac(raw.subarray(0, 9), binding).copy(raw, 9);
    return raw.toString('base64url');
  }

  /** Whether `token` was issued for `binding` by this key and has not expired. */
  verify(token: string, binding: TokenBinding): TokenCheck {
    if (token.length !== TOKEN_CHARS || !TOKEN_RE.test(token)) return 'invalid';
    const raw = Buffer.from(token, 'base64url');
    if (raw.length !== RAW_BYTES || raw[0] !== TOKEN_VERSION) return 'invalid';
    // 41 bytes leave 2 bits of the last character unused: only the canonical spelling is the token
    // (otherwise four strings would verify as one).
    if (raw.toString('base64url') !== token) return 'invalid';
    const expected = this.#mac(raw.subarray(0, 9), binding);
    if (!timingSafeEqual(expected, raw.subarray(9))) return 'invalid';
    const expiry = Number(raw.readBigUInt64BE(1));
    const now = this.#now();
    if (now >= expiry) return 'expired';
    // Issued by this key, so never later than now + the largest TTL; more means the clock went back.
    if (expiry - now > TOKEN_TTL_MAX * 1000 + 60_000) return 'invalid';
    return 'valid';
  }

  #mac(head: Buffer, b: TokenBinding): Buffer {
    return createHmac('sha256', this.#key).update(head).update(`${b.source}\0${b.mode}\0${b.id}`).digest();
  }
}

/** A fresh random node key (tokens then live as long as the process). */
export function generateNodeKey(): Buffer {
  return randomBytes(NODE_KEY_BYTES);
}

export class NodeKeyError extends Error {
  readonly code = 'MDP_ERR_NODE_KEY' satisfies ProgramErrorCode;
  constructor(message: string) {
    super(message);
    this.name = 'NodeKeyError';
  }
}

export interface LoadedNodeKey {
  readonly key: Buffer;
  /** Whether this call created the file. */
  readonly created: boolean;
  /** Problems an operator should see (a key file others can read). */
  readonly warnings: readonly string[];
}

/**
 * The node key from `path`: 64 or more hex digits, or else at least 32 raw bytes. When the file does not
 * exist it is created (mode 0600) with a fresh key; proxies starting together race safely, since the key
 * is written to a private temporary file and linked into place, which fails for all but the first, and
 * the others read the winner's key.
 */
export function loadNodeKey(path: string): LoadedNodeKey {
  let created = false;
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw keyFileError(path, err);
    created = createKeyFile(path);
    text = readFileSync(path);
  }
  const warnings: string[] = [];
  try {
    const fd = openSync(path, 'r');
    try {
      const mode = fstatSync(fd).mode;
      if ((mode & 0o077) !== 0)
        warnings.push(
          `token key file ${path} is readable by others (mode ${(mode & 0o777).toString(8)}); use 0600`,
        );
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw keyFileError(path, err);
  }
  const trimmed = text.toString('latin1').trim();
  const key = /^(?:[0-9a-fA-F]{2}){32,}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : text;
  if (key.length < NODE_KEY_BYTES) {
    throw new NodeKeyError(
      `token key file ${path} holds ${key.length} bytes; it needs at least ${NODE_KEY_BYTES} (or ${NODE_KEY_BYTES * 2} hex digits)`,
    );
  }
  return { key, created, warnings };
}

function createKeyFile(path: string): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, `${generateNodeKey().toString('hex')}\n`);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  } catch (err) {
    throw keyFileError(path, err);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone, or never made (the error above says why).
    }
  }
}

function keyFileError(path: string, err: unknown): NodeKeyError {
  if (err instanceof NodeKeyError) return err;
  const e = err as NodeJS.ErrnoException;
  return new NodeKeyError(`token key file ${path}: ${e.code ?? e.message}`);
}
