/*
 * Whether this process is behind: its event loop runs late, so a request it reads now may have waited in
 * the socket buffer, with the client's close behind it. Only then is a request held back for one more
 * poll phase to see that close: the proxy before it forwards (ns-metadata-proxy handler.ts, forwardLater),
 * the agent before its port lookup (metadata-agent handler.ts); a process that keeps up goes on at once.
 *
 * The signal comes from an unref'd interval timer, read on each tick, so the request path reads a boolean
 * (no clock, no allocation). The process is behind after a tick
 * - that ran late by more than LAG_LIMIT_MS: the loop was blocked, and what arrived meanwhile is read in
 *   the poll phase right after the tick (timers run first);
 * - that ends a period in which the loop never waited for I/O (libuv's idle time did not grow): it has a
 *   backlog, so what it reads has waited, and may have a close behind it.
 * The timer runs only while requests come: a period without one stops it, and from a start until the
 * first tick the answer is "behind", since nothing is known (a quiet process may just have been blocked,
 * which is also what the client-gone tests do; its backlog keeps the loop from waiting, so the first tick
 * still says behind until that backlog has been read).
 */

/** How often the loop is sampled while requests come (ms). */
export const LAG_PERIOD_MS = 10;
/** How late a tick may be before the process counts as behind (ms): far below a client's timeout. */
export const LAG_LIMIT_MS = 20;

export interface LagGateOptions {
  readonly periodMs?: number;
  readonly limitMs?: number;
  /** A monotonic clock in ms (default performance.now). */
  readonly now?: () => number;
  /** Milliseconds the loop has spent waiting for I/O, ever (default libuv's, performance.nodeTiming). */
  readonly idle?: () => number;
  /** Calls `tick` every `ms` until the returned stop is called (default an unref'd setInterval). */
  readonly every?: (tick: () => void, ms: number) => () => void;
}

function loopIdleTime(): number {
  return performance.nodeTiming.idleTime;
}

function unrefInterval(tick: () => void, ms: number): () => void {
  const timer = setInterval(tick, ms);
  timer.unref();
  return () => clearInterval(timer);
}

export class LagGate {
  readonly #periodMs: number;
  readonly #limitMs: number;
  readonly #now: () => number;
  readonly #idle: () => number;
  readonly #every: (tick: () => void, ms: number) => () => void;
  #stop: (() => void) | undefined = undefined;
  #last = 0;
  #idleAtLast = 0;
  #asked = false;
  #behind = true;

  constructor(options: LagGateOptions = {}) {
    this.#periodMs = options.periodMs ?? LAG_PERIOD_MS;
    this.#limitMs = options.limitMs ?? LAG_LIMIT_MS;
    this.#now = options.now ?? performance.now.bind(performance);
    this.#idle = options.idle ?? loopIdleTime;
    this.#every = options.every ?? unrefInterval;
  }

  /** Whether the loop runs late (or whether that is not known yet); starts the sampling if stopped. */
  behind(): boolean {
    this.#asked = true;
    if (this.#stop === undefined) {
      this.#behind = true;
      this.#last = this.#now();
      this.#idleAtLast = this.#idle();
      this.#stop = this.#every(this.#tick, this.#periodMs);
    }
    return this.#behind;
  }

  /** Whether the sampling timer runs (for tests). */
  get sampling(): boolean {
    return this.#stop !== undefined;
  }

  readonly #tick = (): void => {
    const now = this.#now();
    const idle = this.#idle();
    this.#behind = now - this.#last > this.#periodMs + this.#limitMs || idle === this.#idleAtLast;
    this.#last = now;
    this.#idleAtLast = idle;
    if (!this.#asked) {
      // Nobody asked for a whole period: stop sampling (an idle process wakes up for nothing).
      this.#stop?.();
      this.#stop = undefined;
      this.#behind = true;
    }
    this.#asked = false;
  };
}

/** The process's gate: one event loop, so one for every handler in it (the daemon serves many). */
export const processLag = new LagGate();
