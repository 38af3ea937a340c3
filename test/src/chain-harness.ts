/*
 * The whole chain in one process for integration tests: the development Nova (testkit's startNova),
 * the agent on a temporary UNIX socket with the sample inventory, and proxies (network and router mode)
 * on ephemeral loopback ports. Everything is closed by t.after, also when a test fails.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type ProxyIdentity, parseBind } from '@nmp/common';
import { InventoryResolver, MetadataAgent } from '@nmp/metadata-agent';
import { MetadataProxy } from '@nmp/ns-metadata-proxy';
import {
  captureLogs,
  type LogCapture,
  SAMPLE_INSTANCES_FILE,
  SAMPLE_INVENTORY_FILE,
  startNova,
  tempDir,
} from '@nmp/testkit';

export const NETWORK = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
export const ROUTER = '5a8b1c2d-0000-4000-8000-00000000a001';
export const INSTANCE_A = '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10';
export const INSTANCE_B = '2b7d4e8f-1c3a-4f5b-9d6e-7a8b9c0d1e2f';
export const INSTANCE_C = 'a0e1b6f8-5c2d-4e3f-8a9b-1c2d3e4f5a6b';

export { captureLogs };
export type Logs = LogCapture;

export interface NovaSeen {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

export interface Chain {
  readonly novaPort: number;
  readonly socketPath: string;
  readonly networkPort: number;
  readonly routerPort: number;
  /** A proxy in OVN mode (X-OVN-Network-ID) for the same network. */
  readonly ovnPort: number;
  readonly novaSeen: NovaSeen[];
  readonly proxyLogs: Logs;
  readonly agentLogs: Logs;
}

export async function startChain(
  t: TestContext,
  options: { novaSecret?: string; agentSecret?: string } = {},
): Promise<Chain> {
  const dir = tempDir(t, 'nmp-chain-');
  const novaSeen: NovaSeen[] = [];
  const nova = await startNova({
    t,
    sharedSecret: options.novaSecret ?? 'chain-secret',
    onRequest: (info) => novaSeen.push({ method: info.method, url: info.url, headers: info.headers }),
  });

  const agentLogs = captureLogs('metadata-agent');
  const socketPath = join(dir, 'metadata_proxy');
  const agent = new MetadataAgent({
    socketPath,
    socketMode: 0o644,
    backlog: 128,
    sharedSecret: options.agentSecret ?? 'chain-secret',
    resolver: await InventoryResolver.fromFile(SAMPLE_INVENTORY_FILE),
    logger: agentLogs.logger,
    maxBodySize: 65536,
    nova: { host: '127.0.0.1', port: nova.port, protocol: 'http', timeoutMs: 5000 },
  });
  await agent.listen();
  t.after(() => agent.close(100));

  const proxyLogs = captureLogs('ns-metadata-proxy');
  const startProxy = async (identity: ProxyIdentity, bind: string) => {
    const proxy = new MetadataProxy({
      identity,
      binds: [parseBind(bind)],
      socketPath,
      logger: proxyLogs.logger,
    });
    const [address] = await proxy.listen();
    t.after(() => proxy.close(100));
    return address!.port;
  };
  const networkPort = await startProxy({ mode: 'network', id: NETWORK }, '[::]:0');
  const routerPort = await startProxy({ mode: 'router', id: ROUTER }, '[::]:0');
  const ovnPort = await startProxy({ mode: 'ovn', id: NETWORK }, '[::]:0');
  return {
    novaPort: nova.port,
    socketPath,
    networkPort,
    routerPort,
    ovnPort,
    novaSeen,
    proxyLogs,
    agentLogs,
  };
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** A plain HTTP request from a chosen loopback source address, as an instance would make it. */
export function fetchFrom(
  port: number,
  path: string,
  options: {
    source?: string;
    host?: string;
    method?: string;
    headers?: Record<string, string | string[]>;
    body?: string | Buffer;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: options.host ?? '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: { host: '169.254.169.254', ...options.headers },
        agent: false,
        ...(options.source ? { localAddress: options.source } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer for ${path} within 10 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The sample instances file, for comparing user data byte by byte. */
export function sampleInstance(uuid: string): Record<string, unknown> {
  const doc = JSON.parse(readFileSync(SAMPLE_INSTANCES_FILE, 'utf8')) as {
    instances: Array<Record<string, unknown>>;
  };
  const found = doc.instances.find((i) => i.uuid === uuid);
  if (!found) throw new Error(`no sample instance ${uuid}`);
  return found;
}
