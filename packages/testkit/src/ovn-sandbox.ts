/*
 * A real OVN chassis for end-to-end tests, as OVN's own test sandbox builds one (root only):
 *
 *   root namespace       ovsdb-servers for Open_vSwitch, OVN_Northbound and OVN_Southbound on UNIX sockets
 *                        in a temporary directory; ovn-northd (database clients only: no network effect)
 *   <lab>-hv namespace   ovs-vswitchd with the userspace datapath (--disable-system, br-int netdev: no kernel
 *                        module, and its tap devices appear in this namespace, never in the root one) and
 *                        ovn-controller as chassis "hv1"
 *
 * Instances are namespaces of their own with a veth into the hv namespace, plugged into br-int with
 * external_ids:iface-id as nova's os-vif does; transmit checksum offload is turned off on both ends, as the
 * userspace datapath needs. Logical switches and ports are written to the Northbound as neutron writes them.
 * Everything is stopped and removed with the lab.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type NetnsLab, type NsChild, runCommand, sleep } from './netns.js';
import { OVN_NB_SCHEMA, OVN_SB_SCHEMA, OvsdbServer, VSWITCH_SCHEMA } from './ovsdb-server.js';

export const OVN_SANDBOX_TOOLS: readonly string[] = [
  'ovsdb-server',
  'ovsdb-tool',
  'ovs-vsctl',
  'ovs-vswitchd',
  'ovn-northd',
  'ovn-controller',
  'ovn-nbctl',
  'ovn-sbctl',
  'ethtool',
];
export const OVN_SANDBOX_FILES: readonly string[] = [OVN_SB_SCHEMA, OVN_NB_SCHEMA, VSWITCH_SCHEMA];

export interface NeutronPortSpec {
  /** Neutron port id (the logical switch port's name). */
  readonly id: string;
  readonly mac: string;
  readonly ips: readonly string[];
  /** CIDR prefix lengths of the subnets, per family. */
  readonly prefixV4?: number;
  readonly prefixV6?: number;
  readonly deviceId?: string;
  readonly projectId?: string;
  readonly deviceOwner?: string;
  /** 'localport' for the metadata port. */
  readonly type?: string;
  readonly mtu?: number;
}

export interface SandboxVm {
  readonly ns: string;
  /** The device inside the instance namespace. */
  readonly dev: string;
  /** The OVS port in the hv namespace. */
  readonly ovsPort: string;
}

export class OvnSandbox {
  readonly dir: string;
  readonly hv: string;
  readonly chassis = 'hv1';
  readonly ovs: OvsdbServer;
  readonly nb: OvsdbServer;
  readonly sb: OvsdbServer;
  readonly #lab: NetnsLab;
  readonly #children: NsChild[] = [];
  readonly #env: NodeJS.ProcessEnv;
  #vms = 0;

  private constructor(
    lab: NetnsLab,
    dir: string,
    hv: string,
    ovs: OvsdbServer,
    nb: OvsdbServer,
    sb: OvsdbServer,
  ) {
    this.#lab = lab;
    this.dir = dir;
    this.hv = hv;
    this.ovs = ovs;
    this.nb = nb;
    this.sb = sb;
    this.#env = {
      ...process.env,
      OVS_RUNDIR: dir,
      OVS_LOGDIR: dir,
      OVS_DBDIR: dir,
      OVN_RUNDIR: dir,
      OVN_LOGDIR: dir,
      OVN_DBDIR: dir,
    };
  }

  static async start(t: TestContext, lab: NetnsLab): Promise<OvnSandbox> {
    const dir = mkdtempSync(join(tmpdir(), `nmp-ovn-${lab.prefix}-`));
    // Services dropping privileges (the daemon's worker) reach sockets in here.
    chmodSync(dir, 0o755);
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const db = async (name: string, schema: string) => {
      const d = join(dir, name);
      mkdirSync(d, { recursive: true });
      return OvsdbServer.start(t, { schema, dir: d });
    };
    const ovs = await db('ovs', VSWITCH_SCHEMA);
    const nb = await db('nb', OVN_NB_SCHEMA);
    const sb = await db('sb', OVN_SB_SCHEMA);
    const hv = await lab.addNamespace('hv');
    const box = new OvnSandbox(lab, dir, hv, ovs, nb, sb);
    await box.vsctl(['init']);
    await box.vsctl([
      'set',
      'Open_vSwitch',
      '.',
      `external_ids:system-id=${box.chassis}`,
      `external_ids:ovn-remote=${sb.unixRemote}`,
      'external_ids:ovn-encap-type=geneve',
      'external_ids:ovn-encap-ip=127.0.0.1',
      'external_ids:ovn-bridge-datapath-type=netdev',
    ]);
    box.#spawn(hv, 'ovs-vswitchd', [
      ovs.unixRemote,
      '--disable-system',
      `--pidfile=${join(dir, 'vswitchd.pid')}`,
      `--log-file=${join(dir, 'vswitchd.log')}`,
      `--unixctl=${join(dir, 'vswitchd.ctl')}`,
      '--no-chdir',
      '-vconsole:off',
    ]);
    box.#spawn(undefined, 'ovn-northd', [
      `--ovnnb-db=${nb.unixRemote}`,
      `--ovnsb-db=${sb.unixRemote}`,
      `--pidfile=${join(dir, 'northd.pid')}`,
      `--log-file=${join(dir, 'northd.log')}`,
      `--unixctl=${join(dir, 'northd.ctl')}`,
      '--no-chdir',
      '-vconsole:off',
    ]);
    box.#spawn(hv, 'ovn-controller', [
      ovs.unixRemote,
      `--pidfile=${join(dir, 'controller.pid')}`,
      `--log-file=${join(dir, 'controller.log')}`,
      '--no-chdir',
      '-vconsole:off',
    ]);
    // Ready when the chassis is registered and ovn-controller made br-int (netdev).
    await box.until(
      'chassis hv1 in the Southbound and br-int',
      async () => {
        const ch = await box.sbctl(
          ['--bare', '--columns=name', 'find', 'Chassis', `name=${box.chassis}`],
          true,
        );
        const br = await box.vsctl(
          ['--bare', '--columns=datapath_type', 'find', 'Bridge', 'name=br-int'],
          true,
        );
        return ch.trim() === box.chassis && br.trim() === 'netdev';
      },
      30_000,
    );
    return box;
  }

  #spawn(ns: string | undefined, program: string, args: readonly string[]): NsChild {
    const child = this.#lab.spawn(ns, program, args, { env: this.#env });
    this.#children.push(child);
    return child;
  }

  /** Logs of the OVS/OVN daemons (for assertion messages). */
  diagnostics(): string {
    return this.#children.map((c) => `--- pid ${c.pid} ---\n${c.output().slice(-3000)}`).join('\n');
  }

  async #tool(tool: string, db: string, args: readonly string[], allowFailure = false): Promise<string> {
    const r = await runCommand(undefined, tool, [`--db=${db}`, ...args], { env: this.#env, allowFailure });
    return r.code === 0 ? r.stdout : '';
  }

  vsctl(args: readonly string[], allowFailure = false): Promise<string> {
    return this.#tool('ovs-vsctl', this.ovs.unixRemote, ['--no-wait', '--timeout=20', ...args], allowFailure);
  }

  nbctl(args: readonly string[], allowFailure = false): Promise<string> {
    return this.#tool('ovn-nbctl', this.nb.unixRemote, args, allowFailure);
  }

  sbctl(args: readonly string[], allowFailure = false): Promise<string> {
    return this.#tool('ovn-sbctl', this.sb.unixRemote, args, allowFailure);
  }

  async until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${this.diagnostics()}`);
      await sleep(100);
    }
  }

  /** A neutron network: logical switch neutron-<id> with neutron's external_ids. */
  async addNetwork(networkId: string, name: string, mtu = 1442): Promise<void> {
    await this.nbctl([
      'ls-add',
      `neutron-${networkId}`,
      '--',
      'set',
      'Logical_Switch',
      `neutron-${networkId}`,
      `external_ids:"neutron:network_name"="${name}"`,
      `external_ids:"neutron:mtu"="${mtu}"`,
      `external_ids:"neutron:revision_number"="1"`,
    ]);
  }

  /** A neutron port as neutron's OVN driver writes its logical switch port. */
  async addPort(networkId: string, p: NeutronPortSpec): Promise<void> {
    const addresses = [p.mac, ...p.ips].join(' ');
    const cidrs = p.ips
      .map((ip) => `${ip}/${ip.includes(':') ? (p.prefixV6 ?? 64) : (p.prefixV4 ?? 24)}`)
      .join(' ');
    const ext: Record<string, string> = {
      'neutron:cidrs': cidrs,
      'neutron:device_id': p.deviceId ?? '',
      'neutron:device_owner':
        p.deviceOwner ?? (p.type === 'localport' ? 'network:distributed' : 'compute:nova'),
      'neutron:network_name': `neutron-${networkId}`,
      'neutron:port_name': '',
      'neutron:project_id': p.projectId ?? '',
      'neutron:revision_number': '1',
      'neutron:security_group_ids': '',
      ...(p.mtu !== undefined ? { 'neutron:mtu': String(p.mtu) } : {}),
    };
    await this.nbctl([
      'lsp-add',
      `neutron-${networkId}`,
      p.id,
      '--',
      'lsp-set-addresses',
      p.id,
      addresses,
      ...(p.type === 'localport'
        ? ['--', 'lsp-set-type', p.id, 'localport']
        : ['--', 'lsp-set-port-security', p.id, addresses]),
      '--',
      'set',
      'Logical_Switch_Port',
      p.id,
      ...Object.entries(ext).map(([k, v]) => `external_ids:"${k}"="${v}"`),
    ]);
  }

  async deletePort(portId: string): Promise<void> {
    await this.nbctl(['lsp-del', portId]);
  }

  /**
   * An instance: namespace `<lab>-<tag>`, a veth into the hv namespace plugged into br-int with
   * iface-id = the neutron port, the port's MAC, the given addresses and routes.
   */
  async addVm(
    tag: string,
    portId: string,
    mac: string,
    addresses: readonly string[],
    routes: readonly { dest: string; via: string }[] = [],
  ): Promise<SandboxVm> {
    const lab = this.#lab;
    const ns = await lab.addNamespace(tag);
    const n = this.#vms++;
    const ovsPort = lab.devName(`v${n}`);
    const dev = 'eth0';
    await lab.ip(this.hv, ['link', 'add', ovsPort, 'type', 'veth', 'peer', 'name', dev, 'netns', ns]);
    await lab.ip(ns, ['link', 'set', dev, 'address', mac]);
    await lab.ip(ns, ['link', 'set', dev, 'up']);
    await lab.ip(this.hv, ['link', 'set', ovsPort, 'up']);
    for (const [where, d] of [
      [ns, dev],
      [this.hv, ovsPort],
    ] as const)
      await runCommand(where, 'ethtool', ['-K', d, 'tx', 'off']);
    for (const a of addresses) await lab.addAddress(ns, dev, a, { nodad: true });
    for (const r of routes) await lab.addRoute(ns, r.dest, { via: r.via });
    await this.vsctl([
      'add-port',
      'br-int',
      ovsPort,
      '--',
      'set',
      'Interface',
      ovsPort,
      `external_ids:iface-id=${portId}`,
    ]);
    return { ns, dev, ovsPort };
  }

  /** The chassis a logical port is bound to in the Southbound ('' when unbound). */
  async boundTo(portId: string): Promise<string> {
    const uuid = (
      await this.sbctl(
        ['--bare', '--columns=chassis', 'find', 'Port_Binding', `logical_port=${portId}`],
        true,
      )
    ).trim();
    if (uuid === '') return '';
    return (await this.sbctl(['--bare', '--columns=name', 'list', 'Chassis', uuid], true)).trim();
  }
}
