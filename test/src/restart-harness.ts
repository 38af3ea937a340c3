/*
 * What the restart-under-load tests share: a Nova stand-in that answers every request 200 and records each
 * password POST body (so that a request sent twice shows), an inventory of instances for the agent, and the
 * closed-loop load of restart-load-client.js run inside an instance namespace.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type NetnsLab, type NsChild, CLI as SERVICE_CLI } from '@nmp/testkit';

/** The services' CLIs (the testkit's) and the load client of these tests. */
export const CLI = {
  ...SERVICE_CLI,
  loadClient: fileURLToPath(new URL('./restart-load-client.js', import.meta.url)),
} as const;
export const PROJECT = 'feed0000feed0000feed0000feed0000';
export const SECRET = 'restart-test-secret';

export interface RecordingNova {
  readonly port: number;
  /** Password POST bodies in the order they arrived (a duplicate shows twice). */
  readonly posts: string[];
  gets: number;
}

/** A Nova that answers GET with a small JSON document and POST with 200, recording every POST body. */
export async function startRecordingNova(t: TestContext): Promise<RecordingNova> {
  const nova: RecordingNova = { port: 0, posts: [], gets: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') nova.posts.push(Buffer.concat(chunks).toString());
      else nova.gets++;
      const body = JSON.stringify({ uuid: req.headers['x-instance-id'] ?? '' });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (nova as { port: number }).port = (server.address() as AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return nova;
}

export interface InventoryPort {
  readonly networkId: string;
  readonly ip: string;
  readonly instance: string;
}

export function writeInventory(dir: string, ports: readonly InventoryPort[]): string {
  const file = join(dir, 'inventory.json');
  writeFileSync(
    file,
    JSON.stringify({
      ports: ports.map((p, n) => ({
        id: `port-${n}`,
        network_id: p.networkId,
        fixed_ips: [{ ip_address: p.ip }],
        device_id: p.instance,
        device_owner: 'compute:nova',
        project_id: PROJECT,
      })),
    }),
  );
  return file;
}

export interface LoadSummary {
  readonly statuses: Record<string, number>;
  readonly failures: Array<{ at: number; method: string; error: string }>;
  readonly failed: number;
  readonly posts: string[];
  readonly done: number[];
  readonly clientRetries: number;
}

export interface InstanceLoad {
  readonly child: NsChild;
  /** Resolves once `n` requests have succeeded in all (from the progress lines). */
  succeeded(n: number, timeoutMs?: number): Promise<void>;
  /** Successes so far. */
  ok(): number;
  /** Stop (SIGTERM) and read the summary. */
  finish(): Promise<LoadSummary>;
}

export function startInstanceLoad(
  lab: NetnsLab,
  namespace: string,
  options: { url: string; workers: number; postEvery: number; maxMs: number },
): InstanceLoad {
  const child = lab.spawn(namespace, process.execPath, [CLI.loadClient, JSON.stringify(options)]);
  const ok = () => {
    const lines = [
      ...child
        .output()
        .slice(-4000)
        .matchAll(/\{"event":"progress","ok":(\d+)[^\n]*\n/g),
    ];
    return lines.length === 0 ? 0 : Number(lines[lines.length - 1]![1]);
  };
  return {
    child,
    ok,
    async succeeded(n, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (ok() < n) {
        if (Date.now() > deadline || child.process.exitCode !== null)
          throw new Error(
            `load: ${ok()} of ${n} successes after ${timeoutMs} ms:\n${child.output().slice(-3000)}`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async finish() {
      child.process.kill('SIGTERM');
      await child.exited();
      const out = child.output();
      const i = out.lastIndexOf('{"event":"summary"');
      if (i < 0) throw new Error(`load client left no summary:\n${out.slice(-3000)}`);
      return JSON.parse(out.slice(i).split('\n')[0]!) as LoadSummary;
    },
  };
}

/** Successes of the load that completed within [from, to] (ms since the epoch). */
export function answeredBetween(summary: LoadSummary, from: number, to: number): number {
  return summary.done.filter((t) => t >= from && t <= to).length;
}
