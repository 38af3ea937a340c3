// What the boot storms (boot-storm.mjs, ovn.mjs) share, so that their figures compare: the instances (the
// same addressing and Nova documents; instance k asks from its own loopback address) and one measured storm.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuTimesOf, machineBusySeconds, ROOT } from '@nmp/bench';

export const STORM_PROJECT = 'c0ffee00aabbccddeeff001122334455';

const hex = (n, w) => n.toString(16).padStart(w, '0');

/** Instance k: its address (127.20.0.1 ...), uuid, port and MAC. */
export function stormInstance(k) {
  return {
    ip: `127.20.${Math.floor(k / 250)}.${(k % 250) + 1}`,
    uuid: `5707a000-0000-4000-8000-${hex(k, 12)}`,
    portId: `5707b000-0000-4000-8000-${hex(k, 12)}`,
    mac: `fa:16:3e:20:${hex(k >> 8, 2)}:${hex(k & 255, 2)}`,
    name: `storm-${k}`,
  };
}

/** nova-metadata-dev's record of a storm instance on `networkId` (link MTU as the network's). */
export function stormNovaInstance(i, networkId, mtu) {
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

/**
 * One storm against a running chain (chain.mjs): every instance runs cloud-init's sequence from its own
 * address (storm-client.mjs, in a process of its own). Returns the client's summary plus the CPU seconds of
 * proxy, agent, Nova and the clients, and the share of a core the rest of the machine used meanwhile (on
 * two cores, others' load slows a storm down).
 */
export async function runStorm(chain, instances, { logDir, version, timeoutMs = 120_000 }) {
  const specFile = join(logDir, 'client.json');
  writeFileSync(
    specFile,
    JSON.stringify({
      url: chain.proxyUrl,
      version,
      timeoutMs: 10_000,
      instances: instances.map(({ ip, uuid }) => ({ ip, uuid })),
    }),
  );
  const procs = [chain.proxy, chain.agent, chain.nova];
  const cpu0 = procs.map((p) => cpuTimesOf(p.pid));
  const busy0 = machineBusySeconds();
  const r = await runClient(specFile, timeoutMs);
  const busy1 = machineBusySeconds();
  const cpu1 = procs.map((p) => cpuTimesOf(p.pid));
  r.cpuS = Object.fromEntries(
    procs.map((p, i) => [p.name, cpu1[i].user + cpu1[i].sys - cpu0[i].user - cpu0[i].sys]),
  );
  r.cpuS.clients = r.clientCpuS;
  const ours = Object.values(r.cpuS).reduce((a, b) => a + b, 0);
  r.otherCpuShare = Math.max(0, (busy1 - busy0 - ours) / r.elapsedS);
  return r;
}

/** Run storm-client.mjs on a spec file (`wrap`: a command to run it under, e.g. ip netns exec NS). */
export function runClient(specFile, timeoutMs, wrap = []) {
  return new Promise((resolve, reject) => {
    const argv = [
      ...wrap,
      process.execPath,
      fileURLToPath(new URL('./storm-client.mjs', import.meta.url)),
      specFile,
    ];
    const child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(`exit ${signal ?? code}`);
        resolve(JSON.parse(out.trim().split('\n').pop()));
      } catch (e) {
        reject(new Error(`storm client failed: ${e.message}`));
      }
    });
  });
}
