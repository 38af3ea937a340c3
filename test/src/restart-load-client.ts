/*
 * The instances' side of the restart tests, run inside an instance namespace: `workers` clients in a
 * closed loop (each sends its next request when the last one is answered) on keep-alive connections, GET
 * meta_data.json, and every `postEvery`-th request a password POST with a body no other request carries
 * (on a connection of its own, as a client does for a request it must not repeat). Ends on SIGTERM or
 * after maxMs with one summary line on stdout; progress lines while it runs.
 *
 * As HTTP clients do (RFC 9112 §9.3.1; urllib3 under cloud-init, browsers), a GET whose reused idle
 * connection the server closed just as it was sent is sent again once on a new connection. That race
 * exists with any HTTP server that closes idle connections; the summary counts how often it happened,
 * so a test can require none (the agent restarts, where the proxy stays) or report them.
 *
 *   node restart-load-client.js '{"url":"http://169.254.169.254","workers":16,"postEvery":5,"maxMs":60000}'
 */
import { Agent, type IncomingMessage, request } from 'node:http';

interface Options {
  readonly url: string;
  readonly workers: number;
  readonly postEvery: number;
  readonly maxMs: number;
  readonly timeoutMs?: number;
}

const o = JSON.parse(process.argv[2] ?? '{}') as Options;
const base = new URL(o.url);
const agent = new Agent({ keepAlive: true, maxSockets: o.workers, timeout: 30_000 });
const statuses: Record<string, number> = {};
const failures: Array<{ at: number; method: string; error: string }> = [];
const posts: string[] = [];
const done: number[] = [];
let clientRetries = 0;
let stopping = false;

function once(method: string, path: string, body: string | undefined, fresh: boolean) {
  return new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
    const req = request(
      {
        host: base.hostname,
        port: base.port || 80,
        method,
        path,
        agent: fresh ? false : agent,
        headers:
          body === undefined
            ? {}
            : { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) },
        timeout: o.timeoutMs ?? 10_000,
      },
      (res: IncomingMessage) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => reject(Object.assign(err, { reused: req.reusedSocket })));
    req.end(body);
  });
}

async function worker(w: number): Promise<void> {
  for (let i = 0; !stopping; i++) {
    const post = o.postEvery > 0 && i % o.postEvery === o.postEvery - 1;
    const id = `pw-${process.pid}-${w}-${i}`;
    try {
      let r: { status: number };
      if (post) r = await once('POST', '/openstack/latest/password', id, true);
      else {
        try {
          r = await once('GET', '/openstack/latest/meta_data.json', undefined, false);
        } catch (err) {
          const e = err as NodeJS.ErrnoException & { reused?: boolean };
          if (!e.reused || (e.code !== 'ECONNRESET' && e.code !== 'EPIPE')) throw err;
          clientRetries++;
          r = await once('GET', '/openstack/latest/meta_data.json', undefined, true);
        }
      }
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 200) {
        done.push(Date.now());
        if (post) posts.push(id);
      } else failures.push({ at: Date.now(), method: post ? 'POST' : 'GET', error: `status ${r.status}` });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      failures.push({ at: Date.now(), method: post ? 'POST' : 'GET', error: e.code ?? e.message });
      statuses.error = (statuses.error ?? 0) + 1;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const progress = setInterval(() => {
  process.stdout.write(
    `${JSON.stringify({ event: 'progress', ok: done.length, failed: failures.length })}\n`,
  );
}, 200);
const stop = () => {
  stopping = true;
};
process.on('SIGTERM', stop);
setTimeout(stop, o.maxMs).unref();
void Promise.all(Array.from({ length: o.workers }, (_, w) => worker(w))).then(() => {
  clearInterval(progress);
  agent.destroy();
  process.stdout.write(
    `${JSON.stringify({ event: 'summary', statuses, failures: failures.slice(0, 50), failed: failures.length, posts, done, clientRetries })}\n`,
  );
});
