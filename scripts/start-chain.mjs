#!/usr/bin/env node
// `npm start`: the whole chain on loopback with embedded defaults, no root and no OpenStack:
//   curl -> ns-metadata-proxy (127.0.0.1:8080 and [::1]:8080, network mode)
//        -> UNIX socket -> metadata-agent (static sample inventory) -> nova-metadata-dev (127.0.0.1:8775)
// The sample instance A owns 127.0.0.1 and ::1. A fresh random shared secret is made for each run and
// handed to the agent and Nova through the environment (never argv); the proxy, which never needs a secret,
// gets an environment without any. Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { envName, SERVICE_NODE_FLAGS, withoutSecrets } from '@nmp/common';
import { agentSchema } from '@nmp/metadata-agent';

const root = fileURLToPath(new URL('..', import.meta.url));
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

const NETWORK = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
const sample = join(root, 'packages/nova-metadata-dev/sample');
const runDir = mkdtempSync(join(tmpdir(), 'nmp-chain-'));
const socket = join(runDir, 'metadata_proxy');
const secret = randomBytes(24).toString('base64url');

// The agent's secret options (NMP_METADATA_PROXY_SHARED_SECRET, NMP_NEUTRON__PASSWORD...): withoutSecrets
// drops them and anything else named like a secret (OS_PASSWORD of the caller's shell).
const SECRET_ENV = Object.values(agentSchema)
  .filter((d) => d.secret)
  .map((d) => envName(d));
const ENV = {
  agent: { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: secret },
  nova: { ...withoutSecrets(process.env, SECRET_ENV), NMP_METADATA_PROXY_SHARED_SECRET: secret },
  proxy: withoutSecrets(process.env, SECRET_ENV),
};
const children = [];
let stopping = false;

function start(name, args) {
  // The agent and the proxy run with the node flags of the systemd units and the hooks.
  const flags = name === 'nova' ? [] : SERVICE_NODE_FLAGS;
  const child = spawn(process.execPath, [...flags, ...args], {
    cwd: root,
    env: ENV[name],
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `[${name}] `;
  const relay = (stream, out) => {
    let rest = '';
    stream.on('data', (d) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop();
      for (const l of lines) out.write(prefix + l + '\n');
    });
  };
  relay(child.stdout, process.stdout);
  relay(child.stderr, process.stderr);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`start-chain: ${name} exited (${signal ?? code}); stopping the chain`);
      stop(1);
    }
  });
  children.push(child);
  return child;
}

function waitFor(check, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = createConnection(check);
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (stopping) return reject(new Error('stopped'));
        if (Date.now() > deadline) return reject(new Error(`${what} did not come up within ${timeoutMs} ms`));
        setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

function stop(code) {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  setTimeout(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(runDir, { recursive: true, force: true });
    process.exit(code);
  }, 1500).unref();
  Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null))).then(
    () => {
      rmSync(runDir, { recursive: true, force: true });
      process.exit(code);
    },
  );
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
process.on('SIGHUP', () => stop(0));
// Whatever way this process ends, it takes the chain with it.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

try {
  start('nova', [
    'packages/nova-metadata-dev/dist/src/cli.js',
    '--host',
    '127.0.0.1',
    '--port',
    opts['nova-port'],
    '--instances',
    join(sample, 'instances.json'),
  ]);
  await waitFor({ host: '127.0.0.1', port: Number(opts['nova-port']) }, 'nova-metadata-dev');
  start('agent', [
    'packages/metadata-agent/dist/src/cli.js',
    '--metadata-proxy-socket',
    socket,
    '--resolver',
    'inventory',
    '--inventory-file',
    join(sample, 'inventory.json'),
    '--nova-metadata-host',
    '127.0.0.1',
    '--nova-metadata-port',
    opts['nova-port'],
  ]);
  await waitFor({ path: socket }, 'metadata-agent');
  start('proxy', [
    'packages/ns-metadata-proxy/dist/src/cli.js',
    '--bind',
    `127.0.0.1:${opts['proxy-port']}`,
    '--bind',
    `[::1]:${opts['proxy-port']}`,
    '--network-id',
    NETWORK,
    '--metadata-proxy-socket',
    socket,
  ]);
  await waitFor({ host: '127.0.0.1', port: Number(opts['proxy-port']) }, 'ns-metadata-proxy');
} catch (err) {
  if (!stopping) {
    console.error(`start-chain: ${err.message}`);
    stop(1);
  }
}
if (!stopping) {
  const p = opts['proxy-port'];
  console.log(`
The metadata chain is running (network ${NETWORK}); this machine is instance
6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10 on 127.0.0.1 and ::1. Try:

  curl http://127.0.0.1:${p}/openstack/latest/meta_data.json
  curl http://127.0.0.1:${p}/latest/meta-data/instance-id
  curl 'http://[::1]:${p}/openstack/latest/user_data'

Ctrl-C stops it.`);
}
