/*
 * The client's failures, one class per kind, each with a stable `code` (what callers branch on and what log
 * lines carry). Messages never contain file contents or key material: TLS files are named, never quoted.
 */
import type { ProgramErrorCode } from '@nmp/common';

/** The client's codes: the OVSDB_ERR_ entries of @nmp/common's PROGRAM_ERRORS (docs/errors.md). */
export type OvsdbErrorCode = Extract<ProgramErrorCode, `OVSDB_ERR_${string}`>;

export class OvsdbError extends Error {
  readonly code: OvsdbErrorCode;

  constructor(code: OvsdbErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OvsdbError';
    this.code = code;
  }
}

/** A remote string that is not `tcp:HOST[:PORT]`, `ssl:HOST[:PORT]` or `unix:PATH`. */
export class RemoteSyntaxError extends OvsdbError {
  constructor(message: string) {
    super('OVSDB_ERR_REMOTE', message);
    this.name = 'RemoteSyntaxError';
  }
}

/** The peer sent bytes that are not a stream of JSON objects (or one too large, or nested too deep). */
export class FramingError extends OvsdbError {
  constructor(code: 'OVSDB_ERR_FRAMING' | 'OVSDB_ERR_MESSAGE_TOO_LARGE', message: string) {
    super(code, message);
    this.name = 'FramingError';
  }
}

/** The server answered a request with an error (`{"error": ..., "details": ...}`). */
export class RpcError extends OvsdbError {
  constructor(
    readonly method: string,
    readonly error: unknown,
  ) {
    super('OVSDB_ERR_RPC', `${method}: ${describeRpcError(error)}`);
    this.name = 'RpcError';
  }

  /** The server does not know the method (older ovsdb-server, or monitor_cond disabled). */
  get unknownMethod(): boolean {
    return /unknown method|not supported|disabled/i.test(describeRpcError(this.error));
  }
}

/** A transact whose operations failed: `results` is the server's array (an error object at the failing one). */
export class TransactionError extends OvsdbError {
  constructor(
    message: string,
    readonly results: readonly unknown[],
  ) {
    super('OVSDB_ERR_TRANSACTION', message);
    this.name = 'TransactionError';
  }
}

function describeRpcError(error: unknown): string {
  if (typeof error === 'string') return error.slice(0, 500);
  if (error && typeof error === 'object') {
    const e = error as { error?: unknown; details?: unknown };
    const head = typeof e.error === 'string' ? e.error : JSON.stringify(error).slice(0, 300);
    return typeof e.details === 'string' ? `${head} (${e.details.slice(0, 300)})` : head;
  }
  return String(error).slice(0, 500);
}
