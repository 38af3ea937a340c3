/*
 * The hop from the proxy to the agent: a keep-alive pool over the agent's UNIX socket, and the mapping
 * of its failures to what the instance sees (socket missing 503 at once, too slow 504, cut short 502).
 */
import { MetadataError } from '@nmp/common';
import { Pool } from 'undici';

export interface AgentClientOptions {
  readonly socketPath: string;
  /** Milliseconds to wait for the agent's answer (headers, then gaps in the body). */
  readonly timeoutMs: number;
  readonly connectTimeoutMs?: number;
  readonly connections?: number;
}

export function createAgentPool(options: AgentClientOptions): Pool {
  return new Pool('http://localhost', {
    socketPath: options.socketPath,
    connections: options.connections ?? 128,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connect: { timeout: options.connectTimeoutMs ?? 5_000 },
  });
}

/** Map an undici failure talking to the agent to one of our codes. */
export function agentError(err: unknown): MetadataError {
  const e = err as { code?: string; message?: string };
  const details = { upstream: 'agent', cause: e?.code ?? e?.message ?? String(err) };
  switch (e?.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
    case 'EACCES':
    case 'ENOTSOCK':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new MetadataError('MDP_ERR_AGENT_UNREACHABLE', details, { cause: err });
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
      // Something in the instance's request that HTTP/1.1 to the agent cannot carry: its fault, not the agent's.
      return new MetadataError(
        'MDP_ERR_BAD_REQUEST',
        { reason: 'not-forwardable', cause: e?.message },
        { cause: err },
      );
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new MetadataError('MDP_ERR_AGENT_TIMEOUT', details, { cause: err });
    default:
      return new MetadataError('MDP_ERR_AGENT_BAD_RESPONSE', details, { cause: err });
  }
}
