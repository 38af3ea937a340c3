/*
 * The chain for the daemon's namespace tests, all in the root namespace: the development Nova in-process
 * on loopback, the metadata agent (its CLI, inventory resolver) on a UNIX socket, and between the daemon
 * and the agent a recording relay: what it records is exactly what the agent received (X-Neutron-Network-ID,
 * X-Neutron-Router-ID, X-OVN-Network-ID, X-Forwarded-For). The daemon itself runs as its CLI, so a restart is a real one.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  CLI,
  type NetnsLab,
  type NsChild,
  type Service,
  sleep,
  startAgentCli,
  startNova,
  tempDir,
} from '@nmp/testkit';
import { type AttachmentStatus, type DaemonHealth, daemonClient } from '../src/protocol.js';

export const DAEMON_CLI = CLI.daemon;
export const AGENT_CLI = CLI.agent;
export const SECRET = 's3cr3t-daemon-tests';
export const PROJECT = 'c0ffee00aabbccddeeff001122334455';

export interface Port {
  readonly networkId: string;
  readonly ip: string;
  readonly instance: string;
  /** For link-local IPv6 sources, looked up by the MAC in their EUI-64 address. */
  readonly mac?: string;
}

export interface Seen {
  readonly network: string | undefined;
  readonly router: string | undefined;
  readonly ovn: string | undefined;
  readonly forwardedFor: string | undefined;
  readonly path: string;
}

export interface Chain {
  readonly dir: string;
  /** The socket the daemon forwards to (the recording relay in front of the agent). */
  readonly socketPath: string;
  readonly stateDir: string;
  readonly controlSocket: string;
  /** Requests as the agent received them. */
  readonly seen: Seen[];
  readonly agent: Service;
  diagnostics(): string;
}

/** Nova + agent + relay for these ports (one instance per port, named after it). */
export async function startChain(t: TestContext, lab: NetnsLab, ports: readonly Port[]): Promise<Chain> {
  const dir = tempDir(t, `nmp-daemon-${lab.prefix}-`);
  // The serving worker runs as nobody: it must reach the relay socket in here.
  chmodSync(dir, 0o755);

  const nova = await startNova({
    t,
    instances: ports.map((p) => ({
      uuid: p.instance,
      project_id: PROJECT,
      name: `vm-${p.instance.slice(0, 8)}`,
    })),
    sharedSecret: SECRET,
  });

  const inventoryFile = join(dir, 'inventory.json');
  writeFileSync(
    inventoryFile,
    JSON.stringify({
      ports: ports.map((p, n) => ({
        id: `port-${n}`,
        network_id: p.networkId,
        fixed_ips: [{ ip_address: p.ip }],
        ...(p.mac ? { mac_address: p.mac } : {}),
        device_id: p.instance,
        device_owner: 'compute:nova',
        project_id: PROJECT,
      })),
    }),
  );
  const agentSocket = join(dir, 'agent.sock');
  const agent = await startAgentCli({
    t,
    socketPath: agentSocket,
    novaPort: nova.port,
    sharedSecret: SECRET,
    resolverArgs: ['--resolver', 'inventory', '--inventory-file', inventoryFile],
    args: ['--metadata-proxy-socket-mode', 'all'],
  });

  const seen: Seen[] = [];
  const relaySocket = join(dir, 'relay.sock');
  const relay = http.createServer((req, res) => {
    const h = req.headers;
    seen.push({
      network: h['x-neutron-network-id'] as string | undefined,
      router: h['x-neutron-router-id'] as string | undefined,
      ovn: h['x-ovn-network-id'] as string | undefined,
      forwardedFor: h['x-forwarded-for'] as string | undefined,
      path: req.url ?? '',
    });
    const up = http.request(
      { socketPath: agentSocket, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => relay.listen(relaySocket, () => r()));
  chmodSync(relaySocket, 0o777);
  t.after(
    () =>
      new Promise<void>((r) => {
        relay.close(() => r());
        relay.closeAllConnections();
      }),
  );

  const stateDir = join(dir, 'state');
  return {
    dir,
    socketPath: relaySocket,
    stateDir,
    controlSocket: join(stateDir, 'nmp-metadata-proxy-daemon', 'control.sock'),
    seen,
    agent,
    diagnostics: () => `--- agent ---\n${agent.output().slice(-4000)}`,
  };
}

/** Flags that point a daemon at this chain. */
export function daemonFlags(chain: Chain, extra: readonly string[] = []): string[] {
  return [
    '--state-path',
    chain.stateDir,
    '--metadata-proxy-socket',
    chain.socketPath,
    '--metadata-proxy-user',
    'nobody',
    '--namespace-check-interval',
    '1',
    '--attach-concurrency',
    '6',
    '--log-level',
    'warn',
    ...extra,
  ];
}

/** Start the daemon CLI; resolves once its control socket answers. */
export async function startDaemon(
  lab: NetnsLab,
  chain: Chain,
  extra: readonly string[] = [],
): Promise<NsChild> {
  const daemon = lab.spawn(undefined, process.execPath, [DAEMON_CLI, ...daemonFlags(chain, extra)]);
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await daemonClient.list(chain.controlSocket, 2_000);
      return daemon;
    } catch (err) {
      if (daemon.process.exitCode !== null || Date.now() > deadline)
        throw new Error(`daemon did not start (${(err as Error).message}):\n${daemon.output()}`);
      await sleep(100);
    }
  }
}

/** Poll `list` until `ok(list)` or the deadline. */
export async function waitForList(
  chain: Chain,
  ok: (l: { daemon: DaemonHealth; attachments: readonly AttachmentStatus[] }) => boolean,
  timeoutMs = 30_000,
): Promise<{ daemon: DaemonHealth; attachments: readonly AttachmentStatus[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = await daemonClient.list(chain.controlSocket, 10_000);
    if (ok(l)) return l;
    if (Date.now() > deadline)
      throw new Error(
        `daemon state not reached after ${timeoutMs} ms:\n${JSON.stringify(l, null, 1).slice(0, 3000)}`,
      );
    await sleep(200);
  }
}

/** The attachments file as written. */
export function readAttachmentsFile(chain: Chain): {
  version: number;
  attachments: { namespace: string; id: string }[];
} {
  return JSON.parse(
    readFileSync(join(chain.stateDir, 'nmp-metadata-proxy-daemon', 'attachments.json'), 'utf8'),
  );
}
