/*
 * The real chain for the namespace tests: the development Nova and the metadata agent (inventory
 * resolver) run in the root namespace on loopback and a UNIX socket in a temp dir (testkit's startNovaCli and
 * startAgentCli, stopped in t.after); proxies are started by the hooks CLI inside namespaces the test made.
 */
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  CLI,
  type NetnsLab,
  runCommand,
  type Service,
  startAgentCli,
  startNovaCli,
  tempDir,
} from '@nmp/testkit';

export const HOOKS_CLI = CLI.hooks;
export const PROXY_CLI = CLI.proxy;
export const AGENT_CLI = CLI.agent;
export const NOVA_CLI = CLI.nova;
export const SECRET = 's3cr3t-namespace-tests';

export interface InstanceSpec {
  readonly uuid: string;
  readonly name: string;
  readonly projectId?: string;
}

export interface PortSpec {
  readonly networkId: string;
  readonly ip?: string;
  readonly mac?: string;
  readonly deviceId: string;
  readonly deviceOwner?: string;
}

export interface Chain {
  readonly dir: string;
  readonly socketPath: string;
  readonly stateDir: string;
  readonly nova: Service;
  readonly agent: Service;
  /** Flags that point the hooks CLI at this chain and the lab's namespace prefixes. */
  readonly hookFlags: readonly string[];
  readonly dhcpPrefix: string;
  readonly routerPrefix: string;
  /** Run `metadata-hooks <args> <hookFlags>`; resolves with exit code and output. */
  hooks(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Everything the chain printed, for failure messages. */
  diagnostics(): string;
}

export const PROJECT = 'c0ffee00aabbccddeeff001122334455';

/** Start Nova and the agent with these instances and ports. */
export async function startChain(
  t: TestContext,
  lab: NetnsLab,
  instances: readonly InstanceSpec[],
  ports: readonly PortSpec[],
): Promise<Chain> {
  const dir = tempDir(t, `nmp-hooks-${lab.prefix}-`);
  // The proxies run as nobody: they must reach the socket inside this directory.
  chmodSync(dir, 0o755);
  const instancesFile = join(dir, 'instances.json');
  const inventoryFile = join(dir, 'inventory.json');
  writeFileSync(
    instancesFile,
    JSON.stringify({
      instances: instances.map((i) => ({
        uuid: i.uuid,
        project_id: i.projectId ?? PROJECT,
        name: i.name,
        hostname: i.name,
      })),
    }),
  );
  writeFileSync(
    inventoryFile,
    JSON.stringify({
      ports: ports.map((p, n) => ({
        id: `port-${n}`,
        network_id: p.networkId,
        ...(p.mac ? { mac_address: p.mac } : {}),
        fixed_ips: p.ip ? [{ ip_address: p.ip }] : [],
        device_id: p.deviceId,
        device_owner: p.deviceOwner ?? 'compute:nova',
        project_id: PROJECT,
      })),
    }),
  );
  const nova = await startNovaCli({ t, sharedSecret: SECRET, instancesFile });
  const socketPath = join(dir, 'metadata_proxy');
  const agent = await startAgentCli({
    t,
    socketPath,
    novaPort: nova.port,
    sharedSecret: SECRET,
    resolverArgs: ['--resolver', 'inventory', '--inventory-file', inventoryFile],
    args: ['--metadata-proxy-socket-mode', 'all'],
  });

  const stateDir = join(dir, 'state');
  const dhcpPrefix = `${lab.prefix}-d-`;
  const routerPrefix = `${lab.prefix}-r-`;
  const hookFlags = [
    '--state-path',
    stateDir,
    '--metadata-proxy-socket',
    socketPath,
    '--metadata-proxy-user',
    'nobody',
    '--metadata-proxy-group',
    'nogroup',
    '--dhcp-namespace-prefix',
    dhcpPrefix,
    '--router-namespace-prefix',
    routerPrefix,
    '--ns-metadata-proxy-command',
    PROXY_CLI,
    '--ipv6-dad-timeout',
    '8',
  ];
  const hooks = async (...args: string[]) => {
    const t0 = Date.now();
    const r = await runCommand(undefined, process.execPath, [HOOKS_CLI, ...args, ...hookFlags], {
      allowFailure: true,
      timeoutMs: 60_000,
    });
    t.diagnostic(`metadata-hooks ${args.join(' ')}: exit ${r.code} in ${Date.now() - t0} ms`);
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  const diagnostics = () => {
    const parts = [`--- nova ---\n${nova.output()}`, `--- agent ---\n${agent.output()}`];
    const logs = join(stateDir, 'nmp-metadata-hooks', 'logs');
    if (existsSync(logs))
      for (const f of readdirSync(logs))
        parts.push(`--- proxy ${f} ---\n${readFileSync(join(logs, f), 'utf8')}`);
    return parts.join('\n');
  };
  return { dir, socketPath, stateDir, nova, agent, hookFlags, dhcpPrefix, routerPrefix, hooks, diagnostics };
}

/** Run `body`; on failure, attach the chain's output to the error. */
export async function withDiagnostics(
  chain: () => Chain | undefined,
  body: () => Promise<void>,
): Promise<void> {
  try {
    await body();
  } catch (err) {
    const c = chain();
    if (c && err instanceof Error) err.message += `\n${c.diagnostics()}`;
    throw err;
  }
}

/** EUI-64 link-local address of a MAC (what the kernel gives a device with that MAC). */
export function eui64LinkLocal(mac: string): string {
  const b = mac.split(':').map((h) => Number.parseInt(h, 16));
  b[0] = b[0]! ^ 0x02;
  const bytes = [b[0]!, b[1]!, b[2]!, 0xff, 0xfe, b[3]!, b[4]!, b[5]!];
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return `fe80::${groups.join(':')}`;
}
