#!/usr/bin/env node
// `npm start`: the whole chain on loopback with embedded defaults, no root and no OpenStack:
//   curl -> ns-metadata-proxy (127.0.0.1:8080 and [::1]:8080, network mode)
//        -> UNIX socket -> metadata-agent (static sample inventory) -> nova-metadata-dev (127.0.0.1:8775)
// The sample instance A owns 127.0.0.1 and ::1. A fresh random shared secret is made for each run and
// handed to the agent and Nova through the environment (never argv); the proxy, which never needs a secret,
// gets an environment without any. The processes are the testkit's chain harness (startChain), the one the
// tests and the benchmarks use. Ctrl-C stops everything and removes the run's directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SAMPLE_NETWORK, startChain } from '@nmp/testkit';

const { values: opts } = parseArgs({
  options: {
    'proxy-port': { type: 'string', default: process.env.NMP_PROXY_PORT ?? '8080' },
    'nova-port': { type: 'string', default: process.env.NMP_NOVA_PORT ?? '8775' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log('usage: npm start [-- --proxy-port 8080 --nova-port 8775]');
  process.exit(0);
}
for (const k of ['proxy-port', 'nova-port']) {
  if (!/^\d+$/.test(opts[k]) || Number(opts[k]) < 1 || Number(opts[k]) > 65535) {
    console.error(`start-chain: --${k} must be a port number, got '${opts[k]}'`);
    process.exit(2);
  }
}

/** Each process's output on ours, a line at a time, prefixed with its name. */
function relay(service) {
  const prefix = `[${service.name}] `;
  // What it printed while starting, then the rest as it comes.
  for (const l of service.output().split('\n').slice(0, -1)) process.stdout.write(`${prefix}${l}\n`);
  for (const [stream, out] of [
    [service.child.stdout, process.stdout],
    [service.child.stderr, process.stderr],
  ]) {
    let rest = '';
    stream?.on('data', (d) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop();
      for (const l of lines) out.write(`${prefix}${l}\n`);
    });
  }
}

// The run's directory (the agent's socket) is ours, so that a Ctrl-C while the chain starts removes it too;
// processes already started are killed by the harness when this process exits.
const dir = mkdtempSync(join(tmpdir(), 'nmp-chain-'));
let chain;
let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  await chain?.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => void stop(0));

try {
  chain = await startChain({
    dir,
    // The user's NMP_* settings reach the processes (the proxy's and Nova's without secrets).
    inheritEnv: true,
    nova: { port: Number(opts['nova-port']) },
    proxy: {
      port: Number(opts['proxy-port']),
      args: ['--bind', `[::1]:${opts['proxy-port']}`],
    },
  });
} catch (err) {
  console.error(`start-chain: ${err.message}`);
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
}
for (const p of chain.processes) {
  relay(p);
  void p.exited.then((how) => {
    if (stopping) return;
    console.error(`start-chain: ${p.name} exited (${how}); stopping the chain`);
    void stop(1);
  });
}
if (!stopping) {
  const p = opts['proxy-port'];
  console.log(`
The metadata chain is running (network ${SAMPLE_NETWORK}); this machine is instance
6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10 on 127.0.0.1 and ::1. Try:

  curl http://127.0.0.1:${p}/openstack/latest/meta_data.json
  curl http://127.0.0.1:${p}/latest/meta-data/instance-id
  curl 'http://[::1]:${p}/openstack/latest/user_data'

Ctrl-C stops it.`);
}
