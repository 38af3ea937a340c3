/*
 * The hop from the proxy to the agent: keep-alive connections over the agent's UNIX socket, and the
 * mapping of their failures to what the instance sees (socket missing 503 at once, too slow 504, cut
 * short 502).
 *
 * node's own HTTP client, not undici: undici parses with llhttp compiled to WebAssembly, and compiling it
 * (plus the compiler's memory) costs a proxy about 10 MB of its resident memory for one small parser per
 * process; node:http uses the llhttp built into node. One proxy runs per network, so that memory is
 * multiplied on a network node (issue 6: proxy <= 70 MB after load). The agent keeps undici for Nova.
 * Measured again for issue 22 (packages/bench/src/agent-clients.ts, the hop on its own): an undici Pool
 * used 0.87x the CPU per request of this client and 19 MB more resident memory after the load.
 */
import { Agent, type ClientRequest, type IncomingMessage, type RequestOptions, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { MetadataError, type ProgramErrorCode } from '@nmp/common';

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
  readonly code = 'MDP_AGENT_TIMEOUT' satisfies ProgramErrorCode;
}

export class AgentClient {
  readonly socketPath: string;
  readonly #agent: ConnectionPool;
  readonly #timeoutMs: number;
  /** Makes a connection of its own for a request that must not share one (agent-retry.ts). */
  readonly #connect: () => Socket;

  constructor(options: AgentClientOptions) {
    this.socketPath = options.socketPath;
    this.#timeoutMs = options.timeoutMs;
    const connections = options.connections ?? 128;
    this.#agent = new ConnectionPool(
      {
        keepAlive: true,
        maxSockets: connections,
        maxFreeSockets: connections,
        // The most recently used connection first: under light load the rest age out.
        scheduling: 'lifo',
        timeout: IDLE_MS,
      },
      options.timeoutMs,
    );
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
    // Module-level listeners reading the exchange off the request: no closures per request (and `on`
    // where `once` would make one: 'response' comes once, 'timeout' destroys the request).
    req.exchange = exchange;
    req.timeoutMs = this.#timeoutMs;
    req.on('timeout', onTimeout);
    // A kept-alive connection got its timeout from the pool already; a new one gets it once connected.
    if (!req.reusedSocket) req.setTimeout(this.#timeoutMs);
    req.on('response', onResponse);
    req.on('error', onError);
    req.end(body ?? undefined);
    return req;
  }

  /** Close every connection (idle ones at once; in-flight requests are cut). */
  async close(): Promise<void> {
    this.#agent.destroy();
  }
}

/**
 * node's http.Agent with a short path for what nearly every request finds: an idle connection to the
 * agent's socket. node's own addRequest copies the request's options twice into new objects and works
 * out the pool's key again for every request; with the per-request timer that went with it, that was
 * about 50,000 instructions of the proxy's 270,000 per request (packages/bench/src/callgrind.ts).
 * The short path does what node does with an idle connection, in its order: the most recently used one
 * (LIFO; closed ones are skipped), reuseSocket(), a new async id for the connection, onSocket(), and the
 * request's timeout on the connection. Everything else stays node's: new connections, the queue when all
 * are busy, taking a connection back after its answer (keepSocketAlive(), with the agent's keep-alive
 * hint, and node's 'free' handler), closing idle ones.
 */
class ConnectionPool extends Agent {
  readonly #requestTimeoutMs: number;
  /** The pool's key for our one socket path (node's getName of the first request's options). */
  #name: string | undefined = undefined;

  constructor(options: ConstructorParameters<typeof Agent>[0], requestTimeoutMs: number) {
    super(options);
    this.#requestTimeoutMs = requestTimeoutMs;
  }

  addRequest(req: ClientRequest, options: RequestOptions): void {
    const pools = this as unknown as PoolState;
    // Every request of an AgentClient has the same host, port and socket path, so the same key.
    this.#name ??= this.getName({ ...options, ...(this as unknown as { options: object }).options });
    const idle = pools.freeSockets[this.#name];
    let socket: Socket | undefined;
    if (idle !== undefined) {
      do socket = idle.pop();
      while (socket?.destroyed);
      if (idle.length === 0) delete pools.freeSockets[this.#name];
    }
    if (socket === undefined) {
      // node's own path: a new connection, or the queue when all are busy.
      (Agent.prototype as unknown as AddRequest).addRequest.call(this, req, options);
      return;
    }
    renewAsyncId(socket);
    this.reuseSocket(socket, req);
    const busy = pools.sockets[this.#name];
    if (busy === undefined) pools.sockets[this.#name] = [socket];
    else busy.push(socket);
    (req as ClientRequest & { onSocket(s: Socket): void }).onSocket(socket);
    socket.setTimeout(this.#requestTimeoutMs);
  }
}

/** How ClientRequest hands itself to its agent (a method of http.Agent that @types/node does not list). */
interface AddRequest {
  addRequest(req: ClientRequest, options: RequestOptions): void;
}

/** The parts of http.Agent's state the short path shares with node's code (public fields of Agent). */
interface PoolState {
  freeSockets: Record<string, Socket[] | undefined>;
  sockets: Record<string, Socket[] | undefined>;
}

/**
 * What node's agent does to a connection it hands to a new request: a new async id for its handle, so
 * that async_hooks and AsyncLocalStorage see the new request, not the first one, as its cause.
 */
function renewAsyncId(socket: Socket): void {
  const handle = (socket as unknown as { _handle?: AsyncResettable | null })._handle;
  if (handle === undefined || handle === null || typeof handle.asyncReset !== 'function') return;
  handle.asyncReset({ type: handle.getProviderType(), handle });
  const key = asyncIdSymbol(socket);
  if (key !== undefined) (socket as unknown as Record<symbol, number>)[key] = handle.getAsyncId();
}

interface AsyncResettable {
  asyncReset(resource: object): void;
  getProviderType(): number;
  getAsyncId(): number;
}

/** node's private key for a socket's async id (found once on a socket: node's agent sets it there too). */
let asyncIdKey: symbol | null | undefined;
function asyncIdSymbol(socket: Socket): symbol | undefined {
  if (asyncIdKey === undefined)
    asyncIdKey =
      Object.getOwnPropertySymbols(socket).find((k) => k.description === 'async_id_symbol') ?? null;
  return asyncIdKey ?? undefined;
}

/** A connection to the agent's socket that is destroyed if it is not up within `ms`. */
function connectBounded(path: string, ms: number): Socket {
  const socket = connect({ path });
  const timer = setTimeout(() => {
    socket.destroy(
      Object.assign(new Error(`connecting to the agent socket took over ${ms} ms`), {
        code: 'MDP_AGENT_CONNECT_TIMEOUT' satisfies ProgramErrorCode,
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
