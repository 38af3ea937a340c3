/*
 * Test helpers for the agent: a stand-in Nova on an ephemeral port that records what it received, a
 * started agent on a temporary UNIX socket, and a client that talks HTTP over that socket as the proxy does.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type InstanceIdentity, type InstanceResolver, MetadataError, type NeutronPort } from '@nmp/common';
import { captureLogs, type LogCapture, tempDir as testkitTempDir } from '@nmp/testkit';
import { MetadataAgent } from '../src/agent.js';
import type { NovaClientOptions } from '../src/nova-client.js';
import { InventoryResolver } from '../src/resolver/inventory-resolver.js';

export const NET = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
export const ROUTER = '5a8b1c2d-0000-4000-8000-00000000a001';
export const INSTANCE = '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10';
export const PROJECT = 'c0ffee00aabbccddeeff001122334455';
export const SECRET = 's3cr3t';

export const PORTS: NeutronPort[] = [
  {
    id: 'port-a',
    network_id: NET,
    mac_address: 'fa:16:3e:be:3d:62',
    fixed_ips: [{ ip_address: '10.0.0.5' }, { ip_address: '2001:db8::5' }],
    device_id: INSTANCE,
    device_owner: 'compute:nova',
    project_id: PROJECT,
  },
  {
    id: 'port-b',
    network_id: NET,
    mac_address: 'fa:16:3e:00:00:02',
    fixed_ips: [{ ip_address: '10.0.0.6' }],
    device_id: 'instance-b',
    device_owner: 'compute:nova',
    project_id: 'project-b',
  },
  {
    id: 'port-router',
    network_id: NET,
    fixed_ips: [{ ip_address: '10.0.0.1' }],
    device_id: ROUTER,
    device_owner: 'network:router_interface',
    project_id: PROJECT,
  },
];

export interface NovaSeen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export interface StubNova {
  readonly port: number;
  readonly seen: NovaSeen[];
  server: Server;
  respond: (req: IncomingMessage, res: ServerResponse, seen: NovaSeen) => void;
}

export function tempDir(t: TestContext): string {
  return testkitTempDir(t, 'nmp-agent-');
}

/** `p` rejects with the resolver's 503 (MDA_ERR_RESOLVER_UNAVAILABLE); resolves with that error. */
export async function expectResolverUnavailable(p: Promise<unknown>): Promise<MetadataError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof MetadataError, String(e));
    assert.equal(e.code, 'MDA_ERR_RESOLVER_UNAVAILABLE');
    assert.equal(e.status, 503);
    return e;
  }
  assert.fail('expected MDA_ERR_RESOLVER_UNAVAILABLE');
}

export async function startStubNova(t: TestContext): Promise<StubNova> {
  const nova: StubNova = {
    port: 0,
    seen: [],
    server: undefined as unknown as Server,
    respond: (_req, res, seen) => {
      const body = JSON.stringify({ url: seen.url, instance: seen.headers['x-instance-id'] });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    },
  };
  nova.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      nova.seen.push(seen);
      nova.respond(req, res, seen);
    });
  });
  await new Promise<void>((resolve) => nova.server.listen(0, '127.0.0.1', resolve));
  (nova as { port: number }).port = (nova.server.address() as AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        nova.server.close(() => resolve());
        nova.server.closeAllConnections();
      }),
  );
  return nova;
}

export { captureLogs, type LogCapture };

export interface StartedAgent {
  readonly agent: MetadataAgent;
  readonly socketPath: string;
  readonly logs: LogCapture;
}

export async function startAgent(
  t: TestContext,
  options: {
    novaPort: number;
    resolver?: InstanceResolver;
    secret?: string;
    nova?: Partial<NovaClientOptions>;
    socketPath?: string;
  },
): Promise<StartedAgent> {
  const logs = captureLogs('metadata-agent');
  const socketPath = options.socketPath ?? join(tempDir(t), 'run', 'metadata_proxy');
  const agent = new MetadataAgent({
    socketPath,
    socketMode: 0o644,
    backlog: 128,
    sharedSecret: options.secret ?? SECRET,
    resolver: options.resolver ?? InventoryResolver.fromPorts(PORTS),
    logger: logs.logger,
    maxBodySize: 65536,
    nova: { host: '127.0.0.1', port: options.novaPort, protocol: 'http', timeoutMs: 2000, ...options.nova },
  });
  await agent.listen();
  t.after(() => agent.close(100));
  return { agent, socketPath, logs };
}

export interface SocketResponse {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

/** One HTTP request over the agent's UNIX socket, as a proxy would send it. */
export function viaSocket(
  socketPath: string,
  options: {
    method?: string;
    path?: string;
    headers?: Record<string, string | string[]>;
    body?: Buffer | string;
  },
): Promise<SocketResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: options.headers ?? {},
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
    req.on('error', reject);
    req.end(options.body);
  });
}

/** An identity without the port and network it came from (what the instance-facing fields are). */
export function withoutPort(identity: InstanceIdentity): InstanceIdentity {
  const { portId: _port, networkId: _network, ...rest } = identity;
  return rest;
}
