/*
 * The RPC tests' lab: a throwaway RabbitMQ node, a user whose password needs %-escaping, neutron's own
 * RPC server code (python3-neutron) answering from a small port list, and resolvers built from the
 * agent's real configuration path (loadConfig over agentSchema with the transport_url in the environment,
 * as a secret may come).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type LoadedConfig, type Logger, loadConfig } from '@nmp/common';
import {
  type NeutronRpcServer,
  type RabbitNode,
  requireNeutronPython,
  requireRabbit,
  startNeutronRpcServer,
  startRabbitNode,
} from '@nmp/testkit';
import { AGENT_COMPAT, agentSchema } from '../src/options.js';
import { createRpcResolver, type RpcParts } from '../src/rpc/create.js';

export const RPC_USER = 'nmp-agent';
/** Characters that must be %-escaped in a URL, and one that looks like a URL delimiter. */
// (No '/': oslo.messaging quotes the password with urllib's default safe='/', and kombu then fails.)
export const RPC_PASSWORD = 'p@ss:w0rd#9%x';

export const NET_A = 'a1a1a1a1-0000-4000-8000-00000000000a';
export const NET_B = 'b2b2b2b2-0000-4000-8000-00000000000b';
export const ROUTER = 'c3c3c3c3-0000-4000-8000-0000000000c3';
export const PROJECT = 'c0ffee00aabbccddeeff001122334455';

export interface LabPort {
  id: string;
  network_id: string;
  mac_address: string;
  fixed_ips: Array<{ subnet_id: string; ip_address: string }>;
  device_id: string;
  device_owner: string;
  project_id: string;
  tenant_id: string;
  name: string;
  admin_state_up: boolean;
  status: string;
}

export function labPort(
  id: string,
  network: string,
  mac: string,
  ips: string[],
  device: string,
  owner = 'compute:nova',
): LabPort {
  return {
    id,
    network_id: network,
    mac_address: mac,
    fixed_ips: ips.map((ip) => ({ subnet_id: `subnet-${network.slice(0, 4)}`, ip_address: ip })),
    device_id: device,
    device_owner: owner,
    project_id: PROJECT,
    tenant_id: PROJECT,
    name: '',
    admin_state_up: true,
    status: 'ACTIVE',
  };
}

export const VM_A = {
  uuid: '11111111-aaaa-4aaa-8aaa-111111111111',
  ip: '10.20.0.5',
  mac: 'fa:16:3e:20:00:05',
};
export const VM_B = {
  uuid: '22222222-bbbb-4bbb-8bbb-222222222222',
  ip: '10.30.0.7',
  mac: 'fa:16:3e:30:00:07',
};

export const LAB_PORTS: LabPort[] = [
  labPort('port-vm-a', NET_A, VM_A.mac, [VM_A.ip, '2001:db8:20::5'], VM_A.uuid),
  labPort('port-vm-b', NET_B, VM_B.mac, [VM_B.ip], VM_B.uuid),
  labPort('port-rtr-a', NET_A, 'fa:16:3e:20:00:01', ['10.20.0.1'], ROUTER, 'network:router_interface'),
  labPort(
    'port-rtr-b',
    NET_B,
    'fa:16:3e:30:00:01',
    ['10.30.0.1'],
    ROUTER,
    'network:router_interface_distributed',
  ),
  labPort(
    'port-dhcp-a',
    NET_A,
    'fa:16:3e:20:00:02',
    ['10.20.0.2'],
    'dhcpd3377d3c-a0d1-5d71-9947-f17125c357bb-a1a1',
    'network:dhcp',
  ),
  // Same address on another network: must never be picked for NET_A.
  labPort('port-other', NET_B, 'fa:16:3e:30:00:05', [VM_A.ip], '33333333-cccc-4ccc-8ccc-333333333333'),
];

export interface RpcLab {
  readonly rabbit: RabbitNode;
  readonly server: NeutronRpcServer;
  readonly url: string;
  /** The agent configuration for this lab (file lines, flags and environment may add or override). */
  load(lines?: readonly string[], env?: Record<string, string>): LoadedConfig<typeof agentSchema>;
  /** RPC parts built from `load(lines)`; closed at the end of the test. */
  parts(t: TestContext, logger: Logger, lines?: readonly string[], url?: string): RpcParts;
}

/** undefined when skipped (not root and RabbitMQ or neutron's python missing). */
export async function startRpcLab(
  t: TestContext,
  options: { topics?: ReadonlyArray<'plugin' | 'reports'>; ports?: readonly unknown[] } = {},
): Promise<RpcLab | undefined> {
  if (!requireRabbit(t) || !requireNeutronPython(t)) return undefined;
  const rabbit = await startRabbitNode(t);
  await rabbit.addUser(RPC_USER, RPC_PASSWORD);
  const url = rabbit.url(RPC_USER, RPC_PASSWORD);
  const server = await startNeutronRpcServer(t, {
    transportUrl: url,
    ...(options.topics ? { topics: options.topics } : {}),
    ports: options.ports ?? LAB_PORTS,
  });
  const load = (lines: readonly string[] = [], env: Record<string, string> = {}, transport = url) => {
    const dir = mkdtempSync(join(tmpdir(), 'nmp-rpc-conf-'));
    try {
      const file = join(dir, 'agent.conf');
      writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
      return loadConfig(agentSchema, {
        flags: { 'config-file': [file] },
        env: { NMP_TRANSPORT_URL: transport, ...env },
        compat: AGENT_COMPAT,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  return {
    rabbit,
    server,
    url,
    load: (lines, env) => load(lines, env),
    parts(tc, logger, lines = [], transport = url) {
      const cfg = load(lines, {}, transport).config;
      const parts = createRpcResolver(
        {
          config: cfg,
          routerCacheTtlMs: cfg.routerCacheTtl * 1000,
          facts: { version: 'test', socketPath: '/run/test.sock', novaHost: '127.0.0.1', novaPort: 8775 },
        },
        logger,
      );
      parts.broker.start();
      tc.after(() => parts.resolver.close());
      return parts;
    },
  };
}
