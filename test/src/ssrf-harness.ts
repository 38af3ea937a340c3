/*
 * The chain of chain-harness.ts plus one proxy with the SSRF defences on (issue 9, docs/security.md), for
 * the ssrf-*.test.ts integration tests. The proxy gets its policy through MetadataProxyOptions.ssrf.
 */
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import { type ProxyIdentity, parseBind } from '@nmp/common';
import {
  generateNodeKey,
  MetadataProxy,
  SessionTokens,
  SsrfPolicy,
  type SsrfSettings,
} from '@nmp/ns-metadata-proxy';
import { type Chain, captureLogs, type Logs, NETWORK } from './chain-harness.js';

export const ALL_OFF: SsrfSettings = Object.freeze({
  tokenMode: 'off',
  tokenMaxTtl: 21600,
  tokenKeyFile: '',
  requiredHeader: undefined,
  refuseForwardedFor: false,
  pathAllow: [],
  pathDeny: [],
});

export interface SsrfProxy {
  readonly port: number;
  readonly policy: SsrfPolicy;
  readonly logs: Logs;
}

/** A proxy in front of `chain`'s agent with `settings` (over ALL_OFF); `now` drives token expiry. */
export async function startSsrfProxy(
  t: TestContext,
  chain: Chain,
  settings: Partial<SsrfSettings>,
  options: { identity?: ProxyIdentity; now?: () => number; key?: Buffer } = {},
): Promise<SsrfProxy> {
  const s: SsrfSettings = { ...ALL_OFF, ...settings };
  const tokens =
    s.tokenMode === 'off'
      ? undefined
      : new SessionTokens(options.key ?? generateNodeKey(), options.now ?? Date.now);
  const policy = new SsrfPolicy({ settings: s, ...(tokens ? { tokens } : {}) });
  const logs = captureLogs('ns-metadata-proxy');
  // A variable, not a literal: `ssrf` is the option the wiring adds to MetadataProxyOptions.
  const proxyOptions = {
    identity: options.identity ?? { mode: 'network' as const, id: NETWORK },
    binds: [parseBind('[::]:0')],
    socketPath: chain.socketPath,
    logger: logs.logger,
    ssrf: policy,
  };
  const proxy = new MetadataProxy(proxyOptions);
  const [address] = await proxy.listen();
  t.after(() => proxy.close(100));
  return { port: address!.port, policy, logs };
}

export interface RawAnswer {
  readonly head: string;
  readonly status: number;
  readonly body: string;
}

/**
 * Exactly these bytes on a new connection from `source` (end the request with `Connection: close`); the
 * whole answer, read until the server closes.
 */
export function rawExchange(port: number, bytes: string, source = '127.0.0.1'): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: source });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('no complete answer within 10 s')), 10_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const head = end === -1 ? text : text.slice(0, end);
      resolve({ head, status: Number(head.split(' ')[1]), body: end === -1 ? '' : text.slice(end + 4) });
    });
    socket.write(bytes);
  });
}

/** The proxy's request log lines (one per request), newest last. */
export function requestLines(logs: Logs): Array<Record<string, unknown>> {
  return logs.lines().filter((l) => l.msg === 'request');
}
