/*
 * Secrets stay where they are needed. `npm start` (scripts/start-chain.mjs) hands the fresh shared secret
 * to the agent and the development Nova only: the proxy's environment (/proc/<pid>/environ, readable by
 * its owner and root) holds neither it nor anything else secret the caller's shell had (OS_PASSWORD).
 * A file that holds a secret (--metadata-proxy-shared-secret-file, the Nova client key) and that every
 * user can read is warned about at start, like a world-readable config file, and the secret is never shown.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLogLines } from '@nmp/testkit';
import { CLI, freePort, ROOT, sleep, spawnCli, tempDir } from './fault-harness.js';

/** The pid of `parent`'s child whose command line matches, or undefined. */
function childOf(parent: number, cmdline: RegExp): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && cmdline.test(readFileSync(`/proc/${name}/cmdline`, 'utf8'))) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

function environ(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return out;
}

test('npm start: the proxy inherits no secret; the agent and Nova get the shared secret', async (t) => {
  const proxyPort = await freePort();
  const novaPort = await freePort();
  const chain = spawn(
    process.execPath,
    [
      join(ROOT, 'scripts/start-chain.mjs'),
      '--proxy-port',
      String(proxyPort),
      '--nova-port',
      String(novaPort),
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        // What an operator's shell may hold; none of it is the proxy's business.
        OS_PASSWORD: 'operator-password-xyz',
        NMP_NEUTRON__PASSWORD: 'keystone-password-xyz',
        AWS_SECRET_ACCESS_KEY: 'aws-secret-xyz',
        // A setting of the proxy's own whose name looks like a secret's: it must still arrive.
        NMP_METADATA_SSRF__TOKEN_MAX_TTL: '600',
      },
    },
  );
  let out = '';
  chain.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  chain.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise((resolve) => chain.once('exit', resolve));
  t.after(async () => {
    chain.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; i < 300 && !out.includes('The metadata chain is running'); i++) {
    if (chain.exitCode !== null) break;
    await sleep(100);
  }
  assert.match(out, /The metadata chain is running/, out);

  const proxy = childOf(chain.pid!, /ns-metadata-proxy/);
  const agent = childOf(chain.pid!, /metadata-agent/);
  assert.ok(proxy !== undefined && agent !== undefined, 'proxy and agent found');
  const proxyEnv = environ(proxy);
  const agentEnv = environ(agent);
  // The chain works with that: the instance gets its metadata.
  const r = await fetch(`http://127.0.0.1:${proxyPort}/latest/meta-data/instance-id`);
  assert.equal(r.status, 200);

  const secret = agentEnv.get('NMP_METADATA_PROXY_SHARED_SECRET');
  assert.ok(secret !== undefined && secret.length >= 16, 'the agent has the shared secret');
  for (const name of [
    'NMP_METADATA_PROXY_SHARED_SECRET',
    'OS_PASSWORD',
    'NMP_NEUTRON__PASSWORD',
    'AWS_SECRET_ACCESS_KEY',
  ]) {
    assert.equal(proxyEnv.has(name), false, `the proxy's environment has ${name}`);
  }
  const everything = [...proxyEnv.values()].join('\n');
  for (const s of [secret, 'operator-password-xyz', 'keystone-password-xyz', 'aws-secret-xyz'])
    assert.ok(!everything.includes(s), 'a secret value in the proxy environment');
  assert.equal(proxyEnv.get('NMP_METADATA_SSRF__TOKEN_MAX_TTL'), '600');
  assert.ok(proxyEnv.has('PATH'));
});

test('a world-readable secret file is warned about (MDA_CONFIG_WORLD_READABLE, naming file and option); a private one is not', async (t) => {
  const dir = tempDir(t, 'nmp-secret-files-');
  const secret = `file-secret-${Math.random().toString(36).slice(2)}`;
  const open = join(dir, 'shared-secret');
  writeFileSync(open, `${secret}\n`, { mode: 0o644 });
  const closed = join(dir, 'shared-secret-private');
  writeFileSync(closed, `${secret}\n`, { mode: 0o600 });
  const key = join(dir, 'nova-client.key');
  writeFileSync(key, '-----BEGIN PRIVATE KEY-----\n', { mode: 0o644 });

  const start = async (extra: readonly string[]) => {
    const agent = spawnCli(t, 'agent', CLI.agent, [
      '--metadata-proxy-socket',
      join(dir, `agent-${Math.random().toString(36).slice(2)}.sock`),
      '--resolver',
      'inventory',
      '--inventory-file',
      join(ROOT, 'packages/nova-metadata-dev/sample/inventory.json'),
      '--admin-socket',
      '',
      ...extra,
    ]);
    await agent.waitFor(/metadata-agent listening/);
    agent.child.kill('SIGTERM');
    await agent.exited;
    assert.ok(!agent.output().includes(secret), 'the secret is in the log');
    return parseLogLines(agent.output()).filter((l) => l.code === 'MDA_CONFIG_WORLD_READABLE');
  };

  const warned = await start(['--metadata-proxy-shared-secret-file', open]);
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.equal(warned[0]!.level, 'warn');
  assert.equal(warned[0]!.file, open);
  assert.equal(warned[0]!.option, 'metadata_proxy_shared_secret');
  assert.equal(warned[0]!.mode, '644');

  assert.deepEqual(await start(['--metadata-proxy-shared-secret-file', closed]), []);

  // The Nova client key (read only with https, but its mode is what matters, whatever the protocol).
  const keyWarned = await start([
    '--metadata-proxy-shared-secret-file',
    closed,
    '--nova-client-priv-key',
    key,
  ]);
  assert.deepEqual(
    keyWarned.map((l) => [l.option, l.file]),
    [['nova_client_priv_key', key]],
  );
});
