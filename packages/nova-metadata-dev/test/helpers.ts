/* Shared test plumbing: a server on an ephemeral loopback port with the sample instances, and a raw client. */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { TestContext } from 'node:test';
import { signInstanceId } from '@nmp/common';
import { SAMPLE_INSTANCES_FILE } from '../src/index.js';
import { loadInstances } from '../src/instances.js';
import {
  createNovaMetadataServer,
  type NovaMetadataServer,
  type NovaMetadataServerOptions,
} from '../src/server.js';

export const SECRET = 's3cr3t';
export const PROJECT = 'c0ffee00aabbccddeeff001122334455';
export const A = '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10';
export const B = '2b7d4e8f-1c3a-4f5b-9d6e-7a8b9c0d1e2f';
export const C = 'a0e1b6f8-5c2d-4e3f-8a9b-1c2d3e4f5a6b';
export const C_PROJECT = '0badc0de0badc0de0badc0de0badc0de';

export const SAMPLE = loadInstances(SAMPLE_INSTANCES_FILE);

export interface Started {
  readonly nova: NovaMetadataServer;
  readonly port: number;
}

export async function startNova(
  t: TestContext,
  options: Partial<NovaMetadataServerOptions> = {},
  host = '127.0.0.1',
): Promise<Started> {
  const nova = createNovaMetadataServer({ instances: SAMPLE, sharedSecret: SECRET, ...options });
  t.after(() => nova.close());
  const address = await nova.listen(0, host);
  return { nova, port: address.port };
}

/** The headers the Neutron agent stamps (reference.md §3.4). */
export function identity(instanceId: string, projectId: string, secret = SECRET): Record<string, string> {
  return {
    'x-instance-id': instanceId,
    'x-tenant-id': projectId,
    'x-instance-id-signature': signInstanceId(secret, instanceId),
    'x-forwarded-for': '10.0.0.5',
    accept: '*/*',
  };
}

export const AS_A = identity(A, PROJECT);
export const AS_B = identity(B, PROJECT);
export const AS_C = identity(C, C_PROJECT);

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string;
  readonly localAddress?: string;
  readonly host?: string;
  readonly agent?: http.Agent;
}

/** One request over a fresh connection (or the given agent); resolves with the raw bytes. */
export function request(port: number, path: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: options.host ?? '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent: options.agent ?? false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

export const TEXT_PLAIN = 'text/plain; charset=UTF-8';
export const TEXT_HTML = 'text/html; charset=UTF-8';
export const JSON_TYPE = 'application/json';

/** webob's generic 404 page for Accept: *\/* (reference.md §3.6, §12.3 item 7). */
export const NOT_FOUND_HTML =
  '<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  The resource could not be found.<br /><br />\n\n\n\n </body>\n</html>';
