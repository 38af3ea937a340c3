#!/usr/bin/env node
// The proxy's hop to the agent on its own (issue 22, item 2): one client process per kind sends the same
// requests to the same small HTTP server on a UNIX socket, and reports its CPU µs per request
// (process.cpuUsage) and its RSS after the load. Kinds:
//   ours        the proxy's AgentClient (packages/ns-metadata-proxy/dist): node:http with its short path
//   node-agent  node:http with a plain keep-alive http.Agent (what AgentClient used before issue 22)
//   undici      an undici Pool (what the bare proxy of --compare-bare uses)
// Kinds run alternately, round by round; the table gives medians and the same-round ratios to `ours`.
//
//   node packages/bench/dist/src/agent-clients.js [--rounds 5] [--requests 20000] [--concurrency 10]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, textTable } from './index.js';

const KINDS = ['ours', 'node-agent', 'undici'] as const;
type Kind = (typeof KINDS)[number];

/** What one client process prints. */
interface ClientResult {
  us: number;
  rssMb: number;
}

if (process.argv[2] === '--client') {
  // One client process: argv kind socketPath requests concurrency.
  const [, , , kind, socketPath = '', n, c] = process.argv;
  const requests = Number(n);
  const concurrency = Number(c);
  const headers = ['host', 'localhost', 'x-forwarded-for', '10.0.0.5', 'x-neutron-network-id', 'net'];
  let send: () => Promise<void>;
  if (kind === 'ours') {
    const { AgentClient } = await import('@nmp/ns-metadata-proxy');
    const client = new AgentClient({ socketPath, timeoutMs: 30_000 });
    send = () =>
      new Promise<void>((resolve, reject) => {
        client.send('GET', '/latest/meta-data/instance-id', headers, null, {
          onAgentResponse(res) {
            res.on('data', () => {});
            res.once('end', resolve);
          },
          onAgentError: reject,
        });
      });
  } else if (kind === 'node-agent') {
    const agent = new Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128, scheduling: 'lifo' });
    send = () =>
      new Promise<void>((resolve, reject) => {
        const req = request({
          agent,
          socketPath,
          method: 'GET',
          path: '/latest/meta-data/instance-id',
          headers,
        });
        req.setTimeout(30_000);
        req.once('response', (res) => {
          res.on('data', () => {});
          res.once('end', () => resolve());
        });
        req.on('error', reject);
        req.end();
      });
  } else {
    const { Pool } = await import('undici');
    const pool = new Pool('http://localhost', { socketPath, connections: 128 });
    send = async () => {
      const r = await pool.request({ method: 'GET', path: '/latest/meta-data/instance-id', headers });
      for await (const _ of r.body) {
        // drained
      }
    };
  }
  const run = async (count: number): Promise<void> => {
    let left = count;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (left-- > 0) await send();
      }),
    );
  };
  await run(2000); // warm-up: the JIT settles, undici compiles its parser
  const cpu0 = process.cpuUsage();
  await run(requests);
  const cpu = process.cpuUsage(cpu0);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
  process.stdout.write(
    `${JSON.stringify({ us: (cpu.user + cpu.system) / requests, rssMb: rssKb / 1024 })}\n`,
  );
  process.exit(0);
}

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    requests: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '10' },
  },
});
const dir = mkdtempSync(join(tmpdir(), 'nmp-agent-clients-'));
const socketPath = join(dir, 'agent.sock');
// The "agent": a fixed answer of the size of an instance-id, kept alive.
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 10 });
  res.end('i-0000abcd');
});
server.keepAliveTimeout = 65_000;
await new Promise<void>((r) => server.listen(socketPath, r));
const results: Record<Kind, ClientResult[]> = { ours: [], 'node-agent': [], undici: [] };
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    const order = round % 2 === 1 ? KINDS : [...KINDS].reverse();
    for (const kind of order) {
      const child = spawn(
        process.execPath,
        [fileURLToPath(import.meta.url), '--client', kind, socketPath, values.requests, values.concurrency],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      if (code !== 0) throw new Error(`client ${kind} exited with ${code}`);
      const r = JSON.parse(out) as ClientResult;
      results[kind].push(r);
      process.stderr.write(
        `  round ${round} ${kind}: ${r.us.toFixed(1)} µs per request, RSS ${r.rssMb.toFixed(1)} MB\n`,
      );
    }
  }
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
const rows = KINDS.map((k) => [
  k,
  median(results[k].map((r) => r.us)).toFixed(1),
  median(results[k].map((r, i) => r.us / (results.ours[i]?.us ?? Number.NaN))).toFixed(2),
  median(results[k].map((r) => r.rssMb)).toFixed(1),
  median(results[k].map((r, i) => r.rssMb - (results.ours[i]?.rssMb ?? Number.NaN))).toFixed(1),
]);
process.stdout.write(
  `${values.requests} requests per round at ${values.concurrency} at a time, ${values.rounds} rounds, node ${process.version}\n` +
    `${textTable(['client', 'CPU µs/request', '÷ ours', 'RSS after MB', '− ours MB'], rows)}\n`,
);
