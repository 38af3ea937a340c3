/*
 * What the installed-package tests share: running an installed command where no system node can be
 * found (a private mount namespace with every node on PATH covered by a stand-in that fails loudly), the
 * file-system inventory compared before install and after purge, and the qdhcp chain driven by a
 * release's own programs (`metadata-hooks dhcp add` starting its proxy, the agent from stock-style
 * neutron.conf + metadata_agent.ini), read by cloud-init's own datasource code from an instance namespace.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NetnsLab, type NsChild, runCommand, sleep } from '@nmp/testkit';

export const NOVA_CLI = fileURLToPath(new URL('../../../nova-metadata-dev/dist/src/cli.js', import.meta.url));
export const PYTHON = '/usr/bin/python3';

// An operator's PATH, not npm's: `npm test` puts every node_modules/.bin of the checkout first, where the
// workspaces' own metadata-agent, metadata-hooks, ... are linked (after an `npm install` over a build), and
// the installed programs would not be the ones found. Every child of this test inherits it.
process.env.PATH = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
  .split(delimiter)
  .filter((d) => !/(^|\/)node_modules\/\.bin\/?$/.test(d))
  .join(delimiter);

/** Every `node` a program could find: on PATH and the usual places, real files only. */
export function systemNodes(): string[] {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin', '/bin'];
  const found = new Set<string>();
  for (const d of dirs) {
    const p = join(d, 'node');
    try {
      if (existsSync(p)) found.add(realpathSync(p));
    } catch {
      // unreadable: nothing to hide
    }
  }
  found.add(realpathSync(process.execPath));
  return [...found].sort();
}

/**
 * argv prefix that runs a command with the system's node hidden: `unshare --mount` (private propagation,
 * so nothing leaks back) and a bind mount of a stand-in over every node, which prints who called it and
 * exits 99. Children (ip netns exec, the proxies the hooks start) inherit the mount namespace.
 */
export function hiddenNodePrefix(dir: string): string[] {
  const standIn = join(dir, 'no-system-node');
  writeFileSync(standIn, '#!/bin/sh\necho "SYSTEM NODE USED: $0 $*" >&2\nexit 99\n');
  chmodSync(standIn, 0o755);
  const mounts = systemNodes()
    .map((n) => `mount --bind ${standIn} ${n}`)
    .join(' && ');
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `${mounts} && exec "$@"`, 'sh'];
}

/** Paths below these roots, for the before-install / after-purge comparison. */
const ROOTS = ['/etc', '/usr', '/lib', '/opt', '/var/lib', '/var/log/nmp', '/var/cache/nmp'];
/** What other programs change while the tests run (package databases, caches, byte-compiled python). */
const VOLATILE = [
  /^\/var\/lib\/(dpkg|apt|ucf|systemd|man-db|dhcp|rabbitmq|openvswitch|ovn|private|polkit-1|sudo)(\/|$)/,
  /\/__pycache__(\/|$)/,
  /^\/var\/cache\//,
  /^\/etc\/(ld\.so\.cache|mtab|passwd-|group-|shadow-|gshadow-|subuid-|subgid-)$/,
];

export function fsInventory(): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      if (VOLATILE.some((v) => v.test(p))) continue;
      out.add(p);
      try {
        const st = lstatSync(p);
        if (st.isDirectory() && !st.isSymbolicLink()) walk(p);
      } catch {
        // vanished meanwhile
      }
    }
  };
  for (const r of ROOTS)
    if (existsSync(r) && !lstatSync(r).isSymbolicLink()) {
      out.add(r);
      walk(r);
    }
  return out;
}

export function difference(a: ReadonlySet<string>, b: ReadonlySet<string>): string[] {
  return [...a].filter((x) => !b.has(x)).sort();
}

export interface Cmd {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function sh(argv: readonly string[], env?: NodeJS.ProcessEnv, input?: string): Cmd {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    env: env ?? { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    input: input ?? '',
    timeout: 300_000,
    maxBuffer: 64 << 20,
  });
  return {
    code: r.status ?? -1,
    stdout: r.stdout ?? '',
    stderr: `${r.stderr ?? ''}${r.error ? r.error.message : ''}`,
  };
}

export function must(argv: readonly string[], env?: NodeJS.ProcessEnv): Cmd {
  const r = sh(argv, env);
  assert.equal(r.code, 0, `${argv.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Processes whose executable is below `prefix` (the release's runtime). */
export function processesRunning(prefix: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8') === '') continue;
      const exe = realpathSync(`/proc/${p}/exe`);
      if (exe.startsWith(prefix)) out.push(Number(p));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

export function exeOf(pid: number): string {
  return spawnSync('readlink', [`/proc/${pid}/exe`], { encoding: 'utf8' }).stdout.trim();
}

export const NET = 'a1b2c3d4-0000-4000-8000-00000000e2e1';
export const VM = {
  uuid: 'a1b2c3d4-1111-4111-8111-00000000e2e1',
  name: 'vm-installed',
  ip: '10.93.0.11',
  mac: 'fa:16:3e:93:00:11',
};
const PROJECT = 'a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4';
export const SECRET = 'installed-package-secret';

/** cloud-init's own reader (DataSourceOpenStack.read_metadata_service), run inside the instance namespace. */
const CLOUD_INIT_READ = `
import json, sys
from cloudinit.sources.DataSourceOpenStack import read_metadata_service
md = read_metadata_service(sys.argv[1], timeout=10, retries=2)
print(json.dumps({"uuid": md["metadata"].get("uuid"), "hostname": md["metadata"].get("hostname"),
                  "keys": sorted(md.keys())}, default=str))
`;

export interface InstalledChain {
  readonly agent: NsChild;
  readonly nova: NsChild;
  readonly dhcpNs: string;
  readonly vmNs: string;
  readonly vmDev: string;
  readonly tap: string;
  readonly stateDir: string;
  readonly socketPath: string;
  readonly hooksConfig: string;
  hooks(...args: string[]): Promise<Cmd>;
  diagnostics(): string;
}

/**
 * Nova (the development one, from the build tree: it stands for the cloud, not for what is installed), and
 * the release's agent, run from `bin` with the system node hidden, reading stock-style neutron files; a
 * qdhcp-style namespace with a tap on a bridge shared with one instance namespace.
 */
export async function startInstalledChain(
  lab: NetnsLab,
  dir: string,
  bin: string,
  hidden: readonly string[],
): Promise<InstalledChain> {
  const stateDir = join(dir, 'state');
  const socketPath = join(stateDir, 'metadata_proxy');
  // The proxies drop to nobody: the socket's directories must be theirs to traverse.
  mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  chmodSync(stateDir, 0o755);
  writeFileSync(
    join(dir, 'instances.json'),
    JSON.stringify({ instances: [{ uuid: VM.uuid, project_id: PROJECT, name: VM.name, hostname: VM.name }] }),
  );
  writeFileSync(
    join(dir, 'inventory.json'),
    JSON.stringify({
      ports: [
        {
          id: 'port-installed',
          network_id: NET,
          mac_address: VM.mac,
          fixed_ips: [{ ip_address: VM.ip }],
          device_id: VM.uuid,
          device_owner: 'compute:nova',
          project_id: PROJECT,
        },
      ],
    }),
  );
  const nova = lab.spawn(
    undefined,
    process.execPath,
    [NOVA_CLI, '--host', '127.0.0.1', '--port', '0', '--instances', join(dir, 'instances.json')],
    { env: { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: SECRET } },
  );
  const port = (await nova.waitForOutput(/listening on http:\/\/127\.0\.0\.1:(\d+)/, 20_000))[1]!;
  // neutron.conf and metadata_agent.ini as a neutron node has them (the options the agent needs, under
  // neutron's names), plus the inventory resolver in place of neutron-server.
  writeFileSync(
    join(dir, 'neutron.conf'),
    `[DEFAULT]\nstate_path = ${stateDir}\ncore_plugin = ml2\nauth_strategy = keystone\n\n[agent]\nroot_helper = sudo /usr/bin/neutron-rootwrap /etc/neutron/rootwrap.conf\n`,
  );
  writeFileSync(
    join(dir, 'metadata_agent.ini'),
    `[DEFAULT]\nnova_metadata_host = 127.0.0.1\nnova_metadata_port = ${port}\nmetadata_proxy_shared_secret = ${SECRET}\nmetadata_proxy_socket_mode = all\nresolver = inventory\ninventory_file = ${join(dir, 'inventory.json')}\n`,
  );
  const agent = lab.spawn(undefined, hidden[0]!, [
    ...hidden.slice(1),
    join(bin, 'metadata-agent'),
    '--config-file',
    join(dir, 'neutron.conf'),
    '--config-file',
    join(dir, 'metadata_agent.ini'),
  ]);
  for (let i = 0; i < 200 && !existsSync(socketPath); i++) {
    if (agent.process.exitCode !== null) break;
    await sleep(100);
  }
  assert.ok(existsSync(socketPath), `the installed agent did not listen:\n${agent.output()}`);

  const dhcpPrefix = `${lab.prefix}-qdhcp-`;
  const sw = await lab.addNamespace('sw');
  const br = await lab.addBridge(sw, 'br');
  const dhcpNs = await lab.addNamespace(`${dhcpPrefix}${NET}`, { exactName: true });
  const vmNs = await lab.addNamespace('vm');
  const d = await lab.addVethPair(sw, dhcpNs, { dev1: lab.devName('sd'), dev2: lab.devName('tap') });
  const v = await lab.addVethPair(sw, vmNs, {
    dev1: lab.devName('sv'),
    dev2: lab.devName('v'),
    mac2: VM.mac,
  });
  for (const dev of [d.dev1, v.dev1]) await lab.attachToBridge(sw, dev, br);
  await lab.addAddress(dhcpNs, d.dev2, '10.93.0.2/24');
  await lab.addAddress(vmNs, v.dev2, `${VM.ip}/24`);
  await lab.addRoute(vmNs, '169.254.169.254/32', { via: '10.93.0.2' });
  await lab.waitForDad(dhcpNs, d.dev2);
  await lab.waitForDad(vmNs, v.dev2);

  const hooksConfig = join(dir, 'metadata-hooks.ini');
  writeFileSync(
    hooksConfig,
    `[DEFAULT]\nstate_path = ${stateDir}\nmetadata_proxy_user = nobody\nmetadata_proxy_group = nogroup\ndhcp_namespace_prefix = ${dhcpPrefix}\nipv6_dad_timeout = 8\n`,
  );
  const hooks = async (...args: string[]) => {
    const r = await runCommand(
      undefined,
      hidden[0]!,
      [...hidden.slice(1), join(bin, 'metadata-hooks'), ...args, '--config-file', hooksConfig],
      { allowFailure: true, timeoutMs: 60_000 },
    );
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
  return {
    agent,
    nova,
    dhcpNs,
    vmNs,
    vmDev: v.dev2,
    tap: d.dev2,
    stateDir,
    socketPath,
    hooksConfig,
    hooks,
    diagnostics,
  };
}

/** cloud-init's datasource, from inside the instance namespace, against `url`. */
export async function cloudInitRead(
  vmNs: string,
  url: string,
): Promise<{ uuid: string; hostname: string; keys: string[] }> {
  const r = await runCommand(vmNs, PYTHON, ['-c', CLOUD_INIT_READ, url], {
    allowFailure: true,
    timeoutMs: 90_000,
  });
  assert.equal(r.code, 0, `cloud-init's reader failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { uuid: string; hostname: string; keys: string[] };
}

/** The chain answers the instance: cloud-init over IPv4, a plain GET over IPv6 link-local. */
export async function assertInstanceServed(lab: NetnsLab, chain: InstalledChain): Promise<void> {
  const md = await cloudInitRead(chain.vmNs, 'http://169.254.169.254');
  assert.equal(md.uuid, VM.uuid, chain.diagnostics());
  // Nova's hostname is the instance's, with the dhcp_domain it adds (novalocal by default).
  assert.match(md.hostname, new RegExp(`^${VM.name}(\\.|$)`));
  assert.ok(md.keys.includes('metadata') && md.keys.includes('userdata'), md.keys.join(','));
  const v6 = await lab.httpGet(chain.vmNs, {
    host: `fe80::a9fe:a9fe%${chain.vmDev}`,
    port: 80,
    path: '/openstack/latest/meta_data.json',
  });
  assert.equal(v6.status, 200, `IPv6: ${v6.text}\n${chain.diagnostics()}`);
  assert.equal((JSON.parse(v6.text) as { uuid: string }).uuid, VM.uuid);
}

/** The proxy `dhcp add` started (from its pid file), checked to run on `runtime`. */
export function proxyPidOf(chain: InstalledChain): number {
  const file = join(chain.stateDir, 'external', 'pids', `${NET}.pid.ns-metadata-proxy`);
  assert.ok(existsSync(file), `no pid file ${file}`);
  return Number(readFileSync(file, 'utf8').trim());
}
