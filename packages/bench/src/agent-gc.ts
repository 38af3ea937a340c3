#!/usr/bin/env node
// Garbage collection and allocation per request of our agent against the bare agent of --compare-bare
// (issue 22): both behind nothing, each sent the same requests over its UNIX socket with the proxy's
// identity headers (an undici Pool, `--concurrency` at a time), the same development Nova behind them, both
// with the services' node flags.
//   --mode gc     (default) each agent with --trace-gc, `--rounds` alternating rounds of `--requests` after
//                 a warm-up: scavenges and mark-compacts per 1,000 requests and the mean scavenge time.
//   --mode alloc  each agent with V8's sampling heap profiler (heap-sample-preload.ts; collected objects
//                 included) for `--sample-seconds` under a steady load: bytes allocated per request and the
//                 allocation sites that allocate most per request.
//
//   node packages/bench/dist/src/agent-gc.js [--mode gc|alloc] [--rounds 3] [--requests 20000]
//                                            [--concurrency 50] [--sample-seconds 5] [--top 15]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SERVICE_NODE_FLAGS } from '@nmp/common';
import {
  SAMPLE_INVENTORY_FILE,
  SAMPLE_NETWORK,
  type Service,
  serviceEnv,
  spawnService,
  startAgentCli,
  startNovaCli,
  tempDir,
  waitForConnect,
} from '@nmp/testkit';
import { Pool } from 'undici';
import { median, textTable } from './index.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'gc' },
    rounds: { type: 'string', default: '3' },
    requests: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '50' },
    'sample-seconds': { type: 'string', default: '5' },
    top: { type: 'string', default: '15' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'usage: node packages/bench/dist/src/agent-gc.js [--mode gc|alloc] [--rounds N] [--requests N] [--concurrency C] [--sample-seconds S] [--top N]\n',
  );
  process.exit(0);
}
const mode = values.mode;
if (mode !== 'gc' && mode !== 'alloc') throw new Error(`--mode: gc or alloc, not ${mode}`);
const positive = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: a whole number >= 1, not ${v}`);
  return n;
};
const rounds = positive('rounds', values.rounds);
const requests = positive('requests', values.requests);
const concurrency = positive('concurrency', values.concurrency);
const sampleSeconds = positive('sample-seconds', values['sample-seconds']);
const top = positive('top', values.top);

const BARE_AGENT = fileURLToPath(new URL('./bare/agent.js', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./heap-sample-preload.js', import.meta.url));
const KINDS = ['ours', 'bare'] as const;
type Kind = (typeof KINDS)[number];
const HEADERS = {
  'x-neutron-network-id': SAMPLE_NETWORK,
  'x-forwarded-for': '127.0.0.1',
  host: '169.254.169.254',
};

const cleanups: Array<() => unknown> = [];
const owner = { after: (fn: () => unknown) => void cleanups.push(fn) };
const dir = tempDir(owner, 'nmp-agent-gc-');
const sharedSecret = `agent-gc-${process.pid}-secret`;

/** One agent of `kind` on its own socket, its output (the --trace-gc lines) in a file. */
async function startKind(kind: Kind, nodeArgs: string[], env: Record<string, string>) {
  const socketPath = join(dir, `${kind}.sock`);
  const outFile = join(dir, `${kind}.out`);
  let service: Service;
  if (kind === 'ours')
    service = await startAgentCli({
      t: owner,
      name: 'agent',
      socketPath,
      novaPort: nova.port,
      sharedSecret,
      nodeArgs,
      env,
      outFile,
      args: ['--log-level', 'info', '--log-file', join(dir, 'ours.log')],
    });
  else {
    service = spawnService('bare-agent', BARE_AGENT, [socketPath, SAMPLE_INVENTORY_FILE, nova.url], {
      t: owner,
      env: serviceEnv({ ...env, NMP_METADATA_PROXY_SHARED_SECRET: sharedSecret }),
      nodeArgs: [...SERVICE_NODE_FLAGS, ...nodeArgs],
      outFile,
    });
    await waitForConnect({ path: socketPath }, 'bare agent', { alive: service.alive });
  }
  return { socketPath, outFile, service };
}

/** `n` requests (or until `stop()` says so), `concurrency` at a time; every answer must be a 200. */
async function load(socketPath: string, n: number, stop: () => boolean = () => false): Promise<number> {
  const pool = new Pool('http://localhost', { socketPath, connections: concurrency });
  let sent = 0;
  let ok = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (sent < n && !stop()) {
          sent++;
          const r = await pool.request({
            method: 'GET',
            path: '/latest/meta-data/instance-id',
            headers: HEADERS,
          });
          const body = await r.body.text();
          if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}: ${body.slice(0, 200)}`);
          ok++;
        }
      }),
    );
  } finally {
    await pool.close();
  }
  return ok;
}

interface GcCount {
  scavenges: number;
  scavengeMs: number;
  markCompacts: number;
}

function gcCount(file: string): GcCount {
  const text = readFileSync(file, 'utf8');
  let scavenges = 0;
  let scavengeMs = 0;
  let markCompacts = 0;
  for (const line of text.split('\n')) {
    if (line.includes(': Scavenge ')) {
      scavenges++;
      scavengeMs += Number(/MB, ([\d.]+) \//.exec(line)?.[1] ?? 0);
    } else if (/: Mark-Compact /.test(line)) markCompacts++;
  }
  return { scavenges, scavengeMs, markCompacts };
}

const nova = await startNovaCli({ t: owner, sharedSecret });
try {
  if (mode === 'gc') {
    const agents = {
      ours: await startKind('ours', ['--trace-gc'], {}),
      bare: await startKind('bare', ['--trace-gc'], {}),
    };
    const rows: Record<Kind, { perK: number[]; ms: number[]; mc: number[] }> = {
      ours: { perK: [], ms: [], mc: [] },
      bare: { perK: [], ms: [], mc: [] },
    };
    for (const k of KINDS) await load(agents[k].socketPath, Math.min(5000, requests));
    for (let round = 1; round <= rounds; round++) {
      for (const k of round % 2 === 1 ? KINDS : [...KINDS].reverse()) {
        const a = gcCount(agents[k].outFile);
        const ok = await load(agents[k].socketPath, requests);
        const b = gcCount(agents[k].outFile);
        const sc = b.scavenges - a.scavenges;
        rows[k].perK.push((sc / ok) * 1000);
        rows[k].ms.push(sc > 0 ? (b.scavengeMs - a.scavengeMs) / sc : Number.NaN);
        rows[k].mc.push(b.markCompacts - a.markCompacts);
        process.stderr.write(
          `  round ${round} ${k}: ${ok} requests, ${sc} scavenges, ${b.markCompacts - a.markCompacts} mark-compacts\n`,
        );
      }
    }
    process.stdout.write(
      `agent-gc: ${rounds} alternating rounds of ${requests} requests at ${concurrency} at a time (medians)\n`,
    );
    process.stdout.write(
      `${textTable(
        [
          'agent',
          'scavenges / 1,000 requests',
          'ms per scavenge',
          `mark-compacts / ${requests}`,
          'µs of scavenging / request',
        ],
        KINDS.map((k) => [
          k,
          median(rows[k].perK).toFixed(2),
          median(rows[k].ms).toFixed(2),
          String(median(rows[k].mc)),
          // scavenges per 1,000 requests x ms each = µs per request
          (median(rows[k].perK) * median(rows[k].ms)).toFixed(1),
        ]),
      )}\n`,
    );
  } else {
    for (const k of KINDS) {
      const prof = join(dir, `${k}.heapprofile`);
      const agent = await startKind(k, ['--import', PRELOAD], {
        NMP_HS_OUT: prof,
        NMP_HS_START_MS: '4000',
        NMP_HS_DUR_MS: String(sampleSeconds * 1000),
      });
      // Requests are counted as they start; the sampling window's are those started between the marks.
      let started = 0;
      let atStart: number | undefined;
      const deadline = Date.now() + 4000 + sampleSeconds * 1000 + 30_000;
      await load(agent.socketPath, Number.MAX_SAFE_INTEGER, () => {
        if (atStart === undefined && existsSync(`${prof}.started`)) atStart = started;
        if (existsSync(`${prof}.stopped`) || Date.now() > deadline) return true;
        started++;
        return false;
      });
      const done = started;
      await agent.service.stop();
      if (!existsSync(prof)) throw new Error(`${k}: no heap profile written`);
      const profile = JSON.parse(readFileSync(prof, 'utf8')) as { head?: ProfileNode; error?: string };
      if (!profile.head) throw new Error(`${k}: ${profile.error ?? 'empty heap profile'}`);
      const sampled = done - (atStart ?? 0);
      const sites = new Map<string, number>();
      let total = 0;
      const walk = (n: ProfileNode): void => {
        const f = n.callFrame;
        const where = f.url.replace(/^.*\/(node_modules|packages)\//, '$1/');
        const key = `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
        total += n.selfSize;
        sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
        for (const c of n.children) walk(c);
      };
      walk(profile.head);
      process.stdout.write(
        `agent-gc --mode alloc, ${k}: ${sampled} requests while sampling (${sampleSeconds} s), ${Math.round(total / sampled)} bytes allocated per request (sampled)\n`,
      );
      process.stdout.write(
        `${textTable(
          ['bytes / request', 'site'],
          [...sites]
            .sort((a, b) => b[1] - a[1])
            .slice(0, top)
            .map(([site, bytes]) => [String(Math.round(bytes / sampled)), site]),
        )}\n`,
      );
    }
  }
} finally {
  for (const fn of cleanups.reverse()) await fn();
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}
