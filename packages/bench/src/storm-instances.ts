// What the boot storms (boot-storm.ts, ovn.ts, region.ts) share, so that their figures compare: the
// instances (the same addressing and Nova documents; instance k asks from its own loopback address), one
// measured storm, and the storm client's spec and result (storm-client.ts).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchChain, cpuTimesOf, machineBusySeconds, ROOT } from '@nmp/bench';

export const STORM_PROJECT = 'c0ffee00aabbccddeeff001122334455';

const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');

/** A storm instance: its address (127.20.0.1 ...), uuid, port and MAC. */
export interface StormInstance {
  readonly ip: string;
  readonly uuid: string;
  readonly portId: string;
  readonly mac: string;
  readonly name: string;
}

/** Instance k. */
export function stormInstance(k: number): StormInstance {
  return {
    ip: `127.20.${Math.floor(k / 250)}.${(k % 250) + 1}`,
    uuid: `5707a000-0000-4000-8000-${hex(k, 12)}`,
    portId: `5707b000-0000-4000-8000-${hex(k, 12)}`,
    mac: `fa:16:3e:20:${hex(k >> 8, 2)}:${hex(k & 255, 2)}`,
    name: `storm-${k}`,
  };
}

/** nova-metadata-dev's record of a storm instance on `networkId` (link MTU as the network's). */
export function stormNovaInstance(i: StormInstance, networkId: string, mtu: number) {
  return {
    uuid: i.uuid,
    project_id: STORM_PROJECT,
    name: i.name,
    hostname: i.name,
    user_data: `#cloud-config\nhostname: ${i.name}\n`,
    vendor_data: { nmp: { environment: 'boot-storm' } },
    vendor_data2: { target: { instance: i.name } },
    network_data: {
      links: [{ id: 'tap0', vif_id: i.portId, type: 'ovs', mtu, ethernet_mac_address: i.mac }],
      networks: [{ id: 'network0', type: 'ipv4_dhcp', link: 'tap0', network_id: networkId }],
      services: [],
    },
    fixed_ips: [i.ip],
  };
}

/** One instance of a storm client's spec: its own url replaces the common one. */
export interface ClientInstance {
  readonly ip: string;
  readonly uuid: string;
  readonly url?: string;
}

/** What storm-client.ts reads (a JSON file). */
export interface ClientSpec {
  readonly url?: string;
  readonly version: string;
  readonly instances: readonly ClientInstance[];
  readonly timeoutMs?: number;
  readonly retries?: number;
  readonly retryDelayMs?: number;
}

/** A request that failed (every try, or one try). */
export interface ClientFailure {
  readonly ip: string;
  readonly path: string;
  readonly status: number;
  readonly error: string | undefined;
  readonly body: string | undefined;
}

/** What storm-client.ts prints (one JSON line). */
export interface ClientResult {
  readonly instances: number;
  readonly requests: number;
  readonly failed: number;
  readonly failureExamples: readonly ClientFailure[];
  readonly failedTries: number;
  readonly retried: number;
  readonly failedTryExamples: readonly (ClientFailure & { readonly at: number })[];
  /** Deleted by region.ts before it keeps the result. */
  failedTryTimes?: readonly number[];
  readonly seconds: number;
  readonly elapsedS: number;
  readonly clientCpuS: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

/** A storm's client result with the CPU seconds of every process and the rest of the machine's share. */
export interface StormResult extends ClientResult {
  /** CPU seconds per process name (proxy, agent, nova, ...) and `clients`. */
  cpuS: Record<string, number>;
  /** Share of a core the rest of the machine used meanwhile. */
  otherCpuShare: number;
}

/**
 * One storm against a running chain (@nmp/bench's startChain): every instance runs cloud-init's sequence
 * from its own address (storm-client.ts, in a process of its own). Returns the client's summary plus the
 * CPU seconds of proxy, agent, Nova and the clients, and the share of a core the rest of the machine used
 * meanwhile (on two cores, others' load slows a storm down).
 */
export async function runStorm(
  chain: BenchChain,
  instances: readonly StormInstance[],
  { logDir, version, timeoutMs = 120_000 }: { logDir: string; version: string; timeoutMs?: number },
): Promise<StormResult> {
  if (chain.proxy === undefined || chain.proxyUrl === undefined) throw new Error('runStorm: no proxy');
  const specFile = join(logDir, 'client.json');
  const spec: ClientSpec = {
    url: chain.proxyUrl,
    version,
    timeoutMs: 10_000,
    instances: instances.map(({ ip, uuid }) => ({ ip, uuid })),
  };
  writeFileSync(specFile, JSON.stringify(spec));
  const procs = [chain.proxy, chain.agent, chain.nova];
  const cpu0 = procs.map((p) => cpuTimesOf(p.pid));
  const busy0 = machineBusySeconds();
  const r = await runClient(specFile, timeoutMs);
  const busy1 = machineBusySeconds();
  const cpu1 = procs.map((p) => cpuTimesOf(p.pid));
  const cpuS: Record<string, number> = Object.fromEntries(
    procs.map((p, i) => [p.name, cpu1[i]!.user + cpu1[i]!.sys - cpu0[i]!.user - cpu0[i]!.sys]),
  );
  cpuS.clients = r.clientCpuS;
  const ours = Object.values(cpuS).reduce((a, b) => a + b, 0);
  return { ...r, cpuS, otherCpuShare: Math.max(0, (busy1 - busy0 - ours) / r.elapsedS) };
}

/** Run storm-client.ts on a spec file (`wrap`: a command to run it under, e.g. ip netns exec NS). */
export function runClient(
  specFile: string,
  timeoutMs: number,
  wrap: readonly string[] = [],
): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const argv = [
      ...wrap,
      process.execPath,
      fileURLToPath(new URL('./storm-client.js', import.meta.url)),
      specFile,
    ];
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(`exit ${signal ?? code}`);
        // storm-client.ts's own output.
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as ClientResult);
      } catch (e) {
        reject(new Error(`storm client failed: ${(e as Error).message}`));
      }
    });
  });
}
