/*
 * How node runs our long-lived services (agent, proxy, proxy daemon). Every launcher uses this list: the
 * generated systemd units, the hooks' proxy command, the daemon's worker, `npm start` and the benchmark,
 * so what is measured is what is deployed.
 *
 * --max-semi-space-size=2: V8's young generation grows to 2 x 16 MB under load by default and keeps it;
 * at 2 MB per half the proxy and the agent each stay about 25 MB smaller after load. The scavenges become
 * more frequent, but each one costs what survives (little: a request's objects die young), and the
 * benchmark showed no difference in CPU per request at 1, 10 or 50 connections.
 * --heap-growing-percent=50: after a full collection V8 lets the old generation grow to up to 4x what
 * survived before collecting it again; our live heap is 10-15 MB and what the young collections promote
 * under load is nearly all dead, so the old generation sat at 30-35 MB after a load of a few seconds. At
 * 1.5x it stays near 20 MB; the extra full collections are of a small heap, marked concurrently.
 * --v8-pool-size=1: node starts four V8 worker threads (background compilation, concurrent marking);
 * each keeps its own malloc arena, 9-11 MB together after load. One thread keeps 2 MB, and on a
 * network node the other cores are busy with other processes anyway.
 * Heap-shaping flags cannot be set from inside the process (V8 sizes the heap at start), so they have
 * to be on node's command line (NODE_OPTIONS refuses --heap-growing-percent). Measured with
 * `npm run bench` (docs/benchmarks.md, Analysis).
 */
export const SERVICE_NODE_FLAGS: readonly string[] = Object.freeze([
  '--max-semi-space-size=2',
  '--heap-growing-percent=50',
  '--v8-pool-size=1',
]);

/** Named like a secret whatever the program: never handed to a child that does not need it. */
const SECRET_NAME = /SECRET|PASSW|CREDENTIAL|PRIVATE/i;
/** Other programs' secrets (OS_TOKEN, AWS_SESSION_TOKEN, ..._API_KEY); not ours: NMP_METADATA_SSRF__TOKEN_MODE is a setting. */
const FOREIGN_SECRET_NAME = /TOKEN|_KEY(?![A-Z0-9])/i;
/** A URL with a password in it (transport_url = rabbit://user:password@host). */
const CREDENTIAL_URL = /:\/\/[^/@\s]*:[^/@\s]*@/;

/**
 * The environment for a child that holds no secret (a proxy, the daemon's worker and helpers): `env`
 * without the variables that hold a secret, by name (`also`: the secret options' own variables, e.g.
 * NMP_METADATA_PROXY_SHARED_SECRET; anything named like a secret) or by value (a URL with a password).
 * A process's environment is readable by its owner in /proc/<pid>/environ, and by everything it starts.
 */
export function withoutSecrets(
  env: Readonly<Record<string, string | undefined>>,
  also: Iterable<string> = [],
): Record<string, string> {
  const drop = new Set(also);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || drop.has(name) || SECRET_NAME.test(name)) continue;
    if (!name.startsWith('NMP_') && FOREIGN_SECRET_NAME.test(name)) continue;
    if (CREDENTIAL_URL.test(value)) continue;
    out[name] = value;
  }
  return out;
}
