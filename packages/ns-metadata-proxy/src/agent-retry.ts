/*
 * When the agent closes a connection before answering, the request is sent once more on a fresh
 * connection, if sending it twice cannot do harm (RFC 9110 §9.2.2: the idempotent methods).
 *
 * This is what a restarting agent looks like from here: a pooled keep-alive connection that was idle
 * when the old agent stopped is closed by it, and a request the proxy wrote at that moment gets the
 * close instead of an answer. The old agent never started on it, the new one (or the socket's backlog,
 * held by systemd or by the new agent) takes the fresh connection. Once only: an agent that keeps
 * closing is a failure to report (502), not to hide.
 *
 * A request that must not be repeated (POST: the password) is never sent again; instead it always goes
 * on a fresh connection of its own, which the agent answers before it closes it (agent.ts: a
 * connection not yet answered is never cut by a stop), so it never meets that race at all. Those are
 * rare (one password POST per instance), so the extra connection costs nothing that shows.
 *
 * Both rules are here, apart from the client that carries them out (agent-client.ts), so that they
 * survive a change of that client.
 */

/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** How node reports a connection closed (or reset) by the agent before any answer arrived. */
const CLOSED_UNANSWERED = new Set(['ECONNRESET', 'EPIPE']);

/** Whether the request may be sent again after failing this way before any byte of an answer. */
export function retryOnFreshConnection(method: string, err: unknown): boolean {
  return IDEMPOTENT.has(method) && CLOSED_UNANSWERED.has((err as { code?: unknown })?.code as string);
}

/** Whether the request goes on a connection of its own instead of a pooled one (it is never repeated). */
export function needsFreshConnection(method: string): boolean {
  return !IDEMPOTENT.has(method);
}
