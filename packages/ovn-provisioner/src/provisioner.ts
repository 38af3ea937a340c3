/*
 * The provisioner: keeps one ovnmeta-<network> namespace per network with a VIF on this chassis, as
 * neutron's OVN metadata agent does (reference.md §15), and nothing else under its prefix.
 *
 *   provision: namespace; veth tap<net[:10]>0 (OVS end, on the integration bridge with iface-id = the
 *              metadata port) / tap<net[:10]>1 (in the namespace: the metadata port's MAC, the network's
 *              MTU); addresses (desired-state.ts); tx checksum off with the userspace datapath; then the
 *              proxy (daemon attach or a process) on 169.254.169.254:80 and [fe80::a9fe:a9fe%tap...1]:80.
 *   teardown:  the proxy, the OVS port, the veth, the namespace.
 *
 * Work is per network, driven by the Southbound replica's changes (only the networks a change touches are
 * looked at again) and done in a queue with a few networks at a time; every step is idempotent, so doing a
 * network again is how everything is repaired. At start every network is done once and every namespace
 * under our prefix that should not exist is torn down (the resync), also OVS ports left by a namespace that
 * vanished.
 *
 * A network that fails is reported (log code MDA_OVN_PROVISION_FAILED, status file) and retried after 1 s,
 * then doubling up to retry_max, while every other network is served: one broken namespace never stops the
 * others, and nothing here throws into the event loop. The link-local addresses are added without duplicate
 * address detection: the metadata port is a localport, whose traffic never leaves the chassis, so no other
 * host can hold them, and waiting out DAD would only delay the proxy's bind.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { LogEvent, type Logger } from '@nmp/common';
import { ipv6Enabled, listNamespaces } from '@nmp/host';
import { type LocalOvs, networkOfDatapath, type OvnSouthbound } from '@nmp/ovn';
import type { Row, RowChange } from '@nmp/ovsdb';
import {
  isLocalVif,
  linkLocalOf,
  NETWORK_ID_RE,
  type NetworkPlan,
  type NetworkSpec,
  planNetwork,
  vethNames,
} from './desired-state.js';
import {
  addAddress,
  addressesOn,
  configureLink,
  createVeth,
  deleteDevice,
  deleteNamespace,
  deviceExists,
  disableTxChecksum,
  ensureNamespace,
  removeAddress,
} from './netns-ops.js';
import { OvsPorts } from './ovs-ports.js';
import type { ProxyLauncher } from './proxy-launcher.js';

export interface ProvisionerOptions {
  readonly southbound: OvnSouthbound;
  readonly ovs: LocalOvs;
  readonly launcher: ProxyLauncher;
  /** Namespace names are prefix + network id (neutron: ovnmeta-). Everything under it is ours. */
  readonly namespacePrefix: string;
  /** The integration bridge; default: the local database's external_ids:ovn-bridge, else br-int. */
  readonly bridge?: string;
  /** Where OVS and the veths' OVS ends live (tests); default: our own namespace. */
  readonly hostNamespace?: string;
  readonly logger: Logger;
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** Networks worked on at once. */
  readonly concurrency?: number;
  /** Written after changes: what every network's namespace is doing. */
  readonly statusFile?: string;
  readonly ovsTimeoutMs?: number;
}

export type NetworkState = 'provisioned' | 'failed' | 'pending';

export interface NetworkStatus {
  readonly network: string;
  readonly namespace: string;
  readonly state: NetworkState;
  readonly since: string;
  readonly attempts: number;
  readonly error?: string;
  readonly nextRetry?: string;
  readonly proxy?: string;
}

interface Entry {
  state: NetworkState;
  since: number;
  attempts: number;
  error?: string;
  retryAt?: number;
  timer?: NodeJS.Timeout;
  proxy?: string;
  /** JSON of the spec last provisioned (to skip nothing: all steps are idempotent, but to log changes). */
  applied?: string;
}

export class OvnProvisioner {
  readonly #o: ProvisionerOptions;
  readonly #log: Logger;
  readonly #ports: OvsPorts;
  /** Datapath uuid -> its localports and this chassis' VIFs (rows). */
  readonly #byDatapath = new Map<string, { localports: Map<string, Row>; vifs: Map<string, Row> }>();
  readonly #entries = new Map<string, Entry>();
  readonly #queue = new Set<string>();
  readonly #busy = new Set<string>();
  #again = new Set<string>();
  #running = 0;
  #ipv6 = true;
  #started = false;
  #closed = false;
  #stopListening: (() => void) | undefined;
  #idleWaiters: (() => void)[] = [];
  #statusTimer: NodeJS.Timeout | undefined;
  readonly #refused = new Set<string>();
  /** Work items done (for tests and metrics). */
  runs = 0;

  constructor(options: ProvisionerOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#ports = new OvsPorts(options.ovs, options.ovsTimeoutMs ?? 30_000);
  }

  get bridge(): string {
    return this.#o.bridge || this.#o.ovs.ovnBridge;
  }

  namespaceOf(network: string): string {
    return `${this.#o.namespacePrefix}${network}`;
  }

  /** Networks and what their namespaces are doing. */
  status(): NetworkStatus[] {
    return [...this.#entries]
      .map(([network, e]) => ({
        network,
        namespace: this.namespaceOf(network),
        state: e.state,
        since: new Date(e.since).toISOString(),
        attempts: e.attempts,
        ...(e.error !== undefined ? { error: e.error } : {}),
        ...(e.retryAt !== undefined ? { nextRetry: new Date(e.retryAt).toISOString() } : {}),
        ...(e.proxy !== undefined ? { proxy: e.proxy } : {}),
      }))
      .sort((a, b) => a.network.localeCompare(b.network));
  }

  /**
   * Begin: follow the replica, and once both databases are connected do the resync. Returns when the
   * resync's work is done (failed networks keep being retried afterwards).
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#ipv6 = await ipv6Enabled(this.#o.hostNamespace);
    const sb = this.#o.southbound;
    const stopChanges = sb.replica.onChange((changes) => this.#onChanges(changes));
    const onConnected = () => {
      // After an outage anything may have changed: look at every network again.
      this.#rebuild();
      this.#scheduleAll();
    };
    sb.client.on('connected', onConnected);
    this.#stopListening = () => {
      stopChanges();
      sb.client.off('connected', onConnected);
    };
    this.#rebuild();
    await Promise.all([sb.client.ready(24 * 3600_000), this.#o.ovs.client.ready(24 * 3600_000)]);
    if (this.#closed) return;
    await this.resync();
  }

  /** Tear down what should not exist under our prefix, then do every network. Resolves when idle. */
  async resync(): Promise<void> {
    const prefix = this.#o.namespacePrefix;
    const wanted = this.#wantedNetworks();
    for (const ns of await listNamespaces()) {
      if (ns.startsWith(prefix)) {
        const network = ns.slice(prefix.length);
        if (!wanted.has(network)) this.schedule(network);
      }
    }
    // OVS ports of metadata ports whose namespace is gone (deleted by hand, or a crash mid-teardown).
    const metaPorts = new Map<string, string>(); // iface-id -> network
    for (const [dp, group] of this.#byDatapath) {
      const network = networkOfDatapath(this.#o.southbound.replica.table('Datapath_Binding').get(dp));
      if (network === undefined) continue;
      for (const lp of group.localports.values()) metaPorts.set(String(lp.logical_port), network);
    }
    for (const i of this.#ports.interfacesOn(this.bridge)) {
      const network = i.ifaceId !== undefined ? metaPorts.get(i.ifaceId) : undefined;
      if (network !== undefined && i.name === vethNames(network)[0] && !wanted.has(network))
        this.schedule(network);
    }
    for (const network of wanted) this.schedule(network);
    await this.idle();
  }

  /** Look at this network again (soon). */
  schedule(network: string): void {
    if (this.#closed || network === '') return;
    if (!NETWORK_ID_RE.test(network)) {
      // Never into `ip` arguments; said once per name.
      if (!this.#refused.has(network)) {
        this.#refused.add(network);
        this.#log.warn(
          { code: LogEvent.MDA_OVN_BAD_NETWORK, network: network.slice(0, 100) },
          'network name unusable in namespace and device names; ignored',
        );
      }
      return;
    }
    const e = this.#entries.get(network);
    if (e?.timer) {
      clearTimeout(e.timer);
      e.timer = undefined;
      e.retryAt = undefined;
    }
    if (this.#busy.has(network)) this.#again.add(network);
    else this.#queue.add(network);
    this.#pump();
  }

  /** Resolves when no work is queued or running (retries waiting on their timers do not count). */
  idle(): Promise<void> {
    if (this.#queue.size === 0 && this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopListening?.();
    for (const e of this.#entries.values()) if (e.timer) clearTimeout(e.timer);
    if (this.#statusTimer) clearTimeout(this.#statusTimer);
    this.#queue.clear();
    await this.idle();
  }

  // --- Following the replica ----------------------------------------------------------------------------

  #group(dp: string) {
    let g = this.#byDatapath.get(dp);
    if (!g) {
      g = { localports: new Map(), vifs: new Map() };
      this.#byDatapath.set(dp, g);
    }
    return g;
  }

  #rebuild(): void {
    this.#byDatapath.clear();
    const chassis = this.#o.southbound.chassisUuid;
    for (const row of this.#o.southbound.replica.table('Port_Binding').values()) this.#add(row, chassis);
  }

  #add(row: Row, chassis: string | undefined): void {
    const dp = row.datapath as string;
    if (row.type === 'localport') this.#group(dp).localports.set(row._uuid, row);
    else if (isLocalVif(row, chassis)) this.#group(dp).vifs.set(row._uuid, row);
  }

  #remove(row: Row): void {
    const g = this.#byDatapath.get(row.datapath as string);
    if (!g) return;
    g.localports.delete(row._uuid);
    g.vifs.delete(row._uuid);
    if (g.localports.size === 0 && g.vifs.size === 0) this.#byDatapath.delete(row.datapath as string);
  }

  #networkOf(dp: string): string | undefined {
    return networkOfDatapath(this.#o.southbound.replica.table('Datapath_Binding').get(dp));
  }

  #onChanges(changes: readonly RowChange[]): void {
    if (changes.some((c) => c.table === 'Chassis')) {
      // This chassis' uuid decides which ports are ours: look at everything again.
      queueMicrotask(() => {
        this.#rebuild();
        if (this.#started) this.#scheduleAll();
      });
      return;
    }
    const chassis = this.#o.southbound.chassisUuid;
    const touched = new Set<string>();
    for (const c of changes) {
      if (c.table === 'Port_Binding') {
        if (c.old) {
          this.#remove(c.old);
          touched.add(c.old.datapath as string);
        }
        if (c.new) {
          this.#add(c.new, chassis);
          touched.add(c.new.datapath as string);
        }
      } else if (c.table === 'Datapath_Binding') {
        const before = networkOfDatapath(c.old);
        if (before !== undefined && this.#started) this.schedule(before);
        touched.add(c.uuid);
      }
    }
    if (!this.#started) return;
    for (const dp of touched) {
      const network = this.#networkOf(dp);
      if (network !== undefined) this.schedule(network);
    }
  }

  #wantedNetworks(): Set<string> {
    const out = new Set<string>();
    for (const [dp, g] of this.#byDatapath) {
      if (g.vifs.size === 0) continue;
      const network = this.#networkOf(dp);
      if (network !== undefined) out.add(network);
    }
    return out;
  }

  #scheduleAll(): void {
    for (const network of this.#wantedNetworks()) this.schedule(network);
    for (const [network, e] of this.#entries) if (e.state !== 'pending' || e.timer) this.schedule(network);
  }

  /** The plan for a network now. */
  plan(network: string): NetworkPlan {
    const dps = this.#o.southbound.replica.table('Datapath_Binding');
    for (const [dp, g] of this.#byDatapath) {
      const row = dps.get(dp);
      if (g.vifs.size === 0 || row === undefined || networkOfDatapath(row) !== network) continue;
      return planNetwork(row, [...g.localports.values()], [...g.vifs.values()], this.#ipv6);
    }
    return { kind: 'teardown', network, reason: 'no VIF of this chassis on the network' };
  }

  // --- The work queue ----------------------------------------------------------------------------------------

  #pump(): void {
    const max = this.#o.concurrency ?? 4;
    while (this.#running < max && this.#queue.size > 0) {
      const network = this.#queue.values().next().value as string;
      this.#queue.delete(network);
      if (this.#busy.has(network)) {
        this.#again.add(network);
        continue;
      }
      this.#busy.add(network);
      this.#running++;
      void this.#work(network).finally(() => {
        this.#busy.delete(network);
        this.#running--;
        if (this.#again.delete(network)) this.#queue.add(network);
        this.#pump();
        if (this.#queue.size === 0 && this.#running === 0) {
          for (const w of this.#idleWaiters.splice(0)) w();
        }
      });
    }
  }

  async #work(network: string): Promise<void> {
    if (this.#closed) return;
    this.runs++;
    const plan = this.plan(network);
    const e = this.#entries.get(network) ?? {
      state: 'pending' as NetworkState,
      since: Date.now(),
      attempts: 0,
    };
    this.#entries.set(network, e);
    try {
      if (plan.kind === 'provision') {
        const json = JSON.stringify(plan.spec);
        const proxy = await this.#provision(plan.spec);
        if (e.applied !== json || e.state !== 'provisioned')
          this.#log.info(
            {
              code: LogEvent.MDA_OVN_PROVISIONED,
              network,
              namespace: this.namespaceOf(network),
              addresses: plan.spec.addresses,
              proxy,
            },
            'metadata namespace provisioned',
          );
        e.applied = json;
        e.proxy = proxy;
        this.#set(e, 'provisioned');
      } else {
        const removed = await this.#teardown(network);
        if (removed)
          this.#log.info(
            {
              code: LogEvent.MDA_OVN_TORN_DOWN,
              network,
              namespace: this.namespaceOf(network),
              reason: plan.reason,
            },
            'metadata namespace torn down',
          );
        this.#entries.delete(network);
      }
      e.attempts = 0;
      e.error = undefined;
    } catch (err) {
      e.attempts++;
      e.error = err instanceof Error ? err.message.slice(0, 2000) : String(err);
      const min = this.#o.retryMinMs ?? 1000;
      const max = this.#o.retryMaxMs ?? 300_000;
      const delay = Math.min(max, min * 2 ** Math.min(e.attempts - 1, 30));
      e.retryAt = Date.now() + delay;
      this.#set(e, 'failed');
      this.#log[e.attempts === 1 ? 'error' : 'warn'](
        {
          code: LogEvent.MDA_OVN_PROVISION_FAILED,
          network,
          namespace: this.namespaceOf(network),
          action: plan.kind,
          attempts: e.attempts,
          retryInMs: delay,
          err: e.error,
        },
        `cannot ${plan.kind} the metadata namespace; other networks are not affected, this one is retried`,
      );
      if (!this.#closed) {
        e.timer = setTimeout(() => {
          e.timer = undefined;
          e.retryAt = undefined;
          this.schedule(network);
        }, delay);
        e.timer.unref();
      }
    }
    this.#writeStatusSoon();
  }

  #set(e: Entry, state: NetworkState): void {
    if (e.state !== state) {
      e.state = state;
      e.since = Date.now();
    }
    if (state !== 'failed') e.retryAt = undefined;
  }

  async #provision(spec: NetworkSpec): Promise<string> {
    const host = this.#o.hostNamespace;
    const ns = this.namespaceOf(spec.network);
    const [outer, inner] = vethNames(spec.network);
    await ensureNamespace(ns);
    if (!(await deviceExists(ns, inner))) {
      // An OVS end left without its peer (a crash between the steps) is in the way: start over.
      if (await deviceExists(host, outer)) await deleteDevice(host, outer);
      await createVeth(host, outer, inner, ns);
    }
    await configureLink(ns, inner, { mac: spec.metadataPort.mac, ...(spec.mtu ? { mtu: spec.mtu } : {}) });
    await configureLink(host, outer, spec.mtu ? { mtu: spec.mtu } : {});

    const current = await addressesOn(ns, inner);
    const desired = new Set(spec.addresses.map((a) => a.toLowerCase()));
    // The kernel's own link-local address of the MAC set above is the kernel's business.
    const kernels = linkLocalOf(spec.metadataPort.mac);
    for (const cidr of current)
      if (!desired.has(cidr) && cidr !== kernels) await removeAddress(ns, inner, cidr);
    for (const cidr of desired) if (!current.includes(cidr)) await addAddress(ns, inner, cidr);

    await this.#ports.ensure(this.bridge, outer, spec.metadataPort.logicalPort);
    if (this.#ports.datapathType(this.bridge) === 'netdev') await disableTxChecksum(ns, inner);

    const binds = ['169.254.169.254:80', ...(spec.ipv6 ? [`[fe80::a9fe:a9fe%${inner}]:80`] : [])];
    return await this.#o.launcher.ensure({ network: spec.network, namespace: ns, binds });
  }

  /** Returns whether anything was there to remove. */
  async #teardown(network: string): Promise<boolean> {
    const host = this.#o.hostNamespace;
    const ns = this.namespaceOf(network);
    const [outer] = vethNames(network);
    const exists = (await listNamespaces()).includes(ns);
    let removed = exists;
    if (exists) await this.#o.launcher.remove(network, ns);
    if (await this.#ports.remove(outer)) removed = true;
    if (await deviceExists(host, outer)) {
      await deleteDevice(host, outer);
      removed = true;
    }
    if (exists) await deleteNamespace(ns);
    return removed;
  }

  #writeStatusSoon(): void {
    const file = this.#o.statusFile;
    if (!file || this.#statusTimer) return;
    this.#statusTimer = setTimeout(() => {
      this.#statusTimer = undefined;
      try {
        mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
        const body = JSON.stringify(
          { updatedAt: new Date().toISOString(), networks: this.status() },
          null,
          2,
        );
        writeFileSync(`${file}.tmp`, `${body}\n`, { mode: 0o644 });
        renameSync(`${file}.tmp`, file);
      } catch (err) {
        this.#log.warn(
          { code: LogEvent.MDA_OVN_STATUS_FILE, err: String(err) },
          'cannot write the status file',
        );
      }
    }, 200);
    this.#statusTimer.unref();
  }
}
