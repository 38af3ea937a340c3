/*
 * The hop from the proxy to the agent: keep-alive connections over the agent's UNIX socket, and the
 * mapping of their failures to what the instance sees (socket missing 503 at once, too slow 504, cut
 * short 502).
 *
 * node's own HTTP client, not undici: undici parses with llhttp compiled to WebAssembly, and compiling it
 * (plus the compiler's memory) costs a proxy about 10 MB of its resident memory for one small parser per
 * process; node:http uses the llhttp built into node. One proxy runs per network, so that memory is
 * multiplied on a network node (issue 6: proxy <= 70 MB after load). The agent keeps undici for Nova.
 */
import { Agent, type ClientRequest, type IncomingMessage, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { MetadataError } from '@nmp/common';

export interface AgentClientOptions {
  readonly socketPath: string;
  /** Milliseconds to wait for the agent's answer (headers, then gaps in the body). */
  readonly timeoutMs: number;
  /** Milliseconds a new connection to the socket may take (503 after that); default 5 s. */
  readonly connectTimeoutMs?: number;
  readonly connections?: number;
}

/** Who hears about one request's outcome: the answer (then its body's end or break), or a failure. */
export interface AgentExchange {
  onAgentResponse(res: IncomingMessage): void;
  /** `request` is the one that failed (a retry may have replaced it since). */
  onAgentError(err: Error, request: ClientRequest): void;
}

/** Idle connections are closed after this long, well before the agent's own keep-alive limit (65 s). */
const IDLE_MS = 30_000;

/** The error a request gets when the agent is silent for timeoutMs. */
export class AgentTimeoutError extends Error {
  readonly code = 'MDP_AGENT_TIMEOUT';
}

export class AgentClient {
  readonly socketPath: string;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  /** Makes a connection of its own for a request that must not share one (agent-retry.ts). */
  readonly #connect: () => Socket;

  constructor(options: AgentClientOptions) {
    this.socketPath = options.socketPath;
    this.#timeoutMs = options.timeoutMs;
    const connections = options.connections ?? 128;
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: connections,
      maxFreeSockets: connections,
      // The most recently used connection first: under light load the rest age out.
      scheduling: 'lifo',
      timeout: IDLE_MS,
    });
    // New connections only (not per request): bounded by connectTimeoutMs.
    const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    const path = this.socketPath;
    this.#connect = () => connectBounded(path, connectTimeoutMs);
    (this.#agent as unknown as { createConnection: () => Socket }).createConnection = this.#connect;
  }

  /**
   * Send one request. `headers` is a flat [name, value, ...] list sent as it is (it must hold Host).
   * `fresh`: on a connection of its own, closed after the answer, instead of a pooled one (see
   * agent-retry.ts). Returns the request, which the caller destroys to abandon it (the instance went away).
   */
  send(
    method: string,
    path: string,
    headers: readonly string[],
    body: Buffer | null,
    exchange: AgentExchange,
    fresh = false,
  ): ClientRequest {
    const req = request(
      fresh
        ? // Without an agent node would still say keep-alive and leave the connection open.
          { createConnection: this.#connect, method, path, headers: [...headers, 'connection', 'close'] }
        : { agent: this.#agent, socketPath: this.socketPath, method, path, headers: headers as string[] },
    ) as PendingRequest;
    // Module-level listeners reading the exchange off the request: no closures per request.
    req.exchange = exchange;
    req.timeoutMs = this.#timeoutMs;
    req.setTimeout(this.#timeoutMs, onTimeout);
    req.once('response', onResponse);
    req.on('error', onError);
    req.end(body ?? undefined);
    return req;
  }

  /** Close every connection (idle ones at once; in-flight requests are cut). */
  async close(): Promise<void> {
    this.#agent.destroy();
  }
}

/** A connection to the agent's socket that is destroyed if it is not up within `ms`. */
function connectBounded(path: string, ms: number): Socket {
  const socket = connect({ path });
  const timer = setTimeout(() => {
    socket.destroy(
      Object.assign(new Error(`connecting to the agent socket took over ${ms} ms`), {
        code: 'MDP_AGENT_CONNECT_TIMEOUT',
      }),
    );
  }, ms);
  const settle = () => clearTimeout(timer);
  socket.once('connect', settle);
  socket.once('close', settle);
  return socket;
}

type PendingRequest = ClientRequest & { exchange: AgentExchange; timeoutMs: number };

function onResponse(this: PendingRequest, res: IncomingMessage): void {
  this.exchange.onAgentResponse(res);
}

function onError(this: PendingRequest, err: Error): void {
  this.exchange.onAgentError(err, this);
}

function onTimeout(this: PendingRequest): void {
  this.destroy(new AgentTimeoutError(`the agent did not answer within ${this.timeoutMs} ms`));
}

/** Map a failure talking to the agent to one of our codes. */
export function agentError(err: unknown): MetadataError {
  const e = err as { code?: string; message?: string };
  const details = { upstream: 'agent', cause: e?.code ?? e?.message ?? String(err) };
  switch (e?.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
    case 'EACCES':
    case 'ENOTSOCK':
    case 'EAGAIN':
    case 'MDP_AGENT_CONNECT_TIMEOUT':
      return new MetadataError('MDP_ERR_AGENT_UNREACHABLE', details, { cause: err });
    case 'ERR_INVALID_CHAR':
    case 'ERR_INVALID_HTTP_TOKEN':
    case 'ERR_HTTP_INVALID_HEADER_VALUE':
    case 'ERR_UNESCAPED_CHARACTERS':
      // Something in the instance's request that HTTP/1.1 to the agent cannot carry: its fault, not the agent's.
      return new MetadataError(
        'MDP_ERR_BAD_REQUEST',
        { reason: 'not-forwardable', cause: e?.message },
        { cause: err },
      );
    case 'MDP_AGENT_TIMEOUT':
      return new MetadataError('MDP_ERR_AGENT_TIMEOUT', details, { cause: err });
    default:
      return new MetadataError('MDP_ERR_AGENT_BAD_RESPONSE', details, { cause: err });
  }
}
