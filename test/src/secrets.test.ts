/*
 * Secrets: the shared secret and the Keystone password come from a file or the environment, never from
 * argv, and appear nowhere an operator or a tenant could read them: not in the logs (captured stdout and
 * stderr of every process), not in /proc/<pid>/cmdline or the process title, not in any answer body —
 * also when Nova refuses the signature (403) or Keystone refuses the password. The agent warns at start
 * when the shared secret is empty or its config file is world-readable.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import {
  createFakeOpenStack,
  FAKE_DEFAULTS,
  type FakePort,
  fakeNeutronResolverArgs,
} from '@nmp/openstack-fakes';
import { request } from 'undici';
import {
  CLI,
  freePort,
  type Proc,
  SAMPLE_INVENTORY,
  SAMPLE_NETWORK,
  spawnCli,
  tempDir,
} from './fault-harness.js';

const PATHS = [
  '/latest/meta-data/instance-id',
  '/openstack/latest/meta_data.json',
  '/openstack/latest/no-such-file',
  '/nope',
];

/** Secrets that would stand out anywhere: long, random-looking, unlike any other string in the chain. */
function secretLike(label: string): string {
  return `${label}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

async function startNova(t: TestContext, secret: string): Promise<{ proc: Proc; port: number }> {
  const port = await freePort();
  const proc = spawnCli(t, 'nova', CLI.nova, ['--port', String(port), '--log-level', 'debug'], {
    NMP_METADATA_PROXY_SHARED_SECRET: secret,
  });
  await proc.waitFor(/listening on http/);
  return { proc, port };
}

async function startProxy(t: TestContext, socketPath: string): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const proc = spawnCli(t, 'proxy', CLI.proxy, [
    '--bind',
    `127.0.0.1:${port}`,
    '--network-id',
    SAMPLE_NETWORK,
    '--metadata-proxy-socket',
    socketPath,
    '--debug',
  ]);
  await proc.waitFor(/ns-metadata-proxy listening/);
  return { proc, url: `http://127.0.0.1:${port}` };
}

/** Drive the paths through the proxy; returns statuses and every body the instance saw. */
async function drive(url: string): Promise<{ statuses: number[]; bodies: string }> {
  const statuses: number[] = [];
  let bodies = '';
  for (const path of PATHS) {
    const res = await request(`${url}${path}`, { headersTimeout: 5000, bodyTimeout: 5000 });
    statuses.push(res.statusCode);
    bodies += `${JSON.stringify(res.headers)}\n${await res.body.text()}\n`;
  }
  return { statuses, bodies };
}

/** What a local user can read about a running process. */
function visible(proc: Proc): string {
  const cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, 'latin1').replaceAll('\0', ' ');
  const comm = readFileSync(`/proc/${proc.pid}/comm`, 'latin1');
  return `${cmdline}\n${comm}`;
}

/** Stop gracefully (so buffered log lines are flushed) and return everything the process printed. */
async function stopAndCollect(proc: Proc): Promise<string> {
  proc.child.kill('SIGTERM');
  await proc.exited;
  return proc.output();
}

function assertAbsent(secret: string, where: string, text: string): void {
  assert.ok(text.length > 0, `${where}: nothing captured`);
  assert.ok(!text.includes(secret), `the secret appears in ${where}`);
}

function agentArgs(socketPath: string, novaPort: number, extra: readonly string[] = []): string[] {
  return [
    '--resolver',
    'inventory',
    '--inventory-file',
    SAMPLE_INVENTORY,
    '--metadata-proxy-socket',
    socketPath,
    '--nova-metadata-port',
    String(novaPort),
    '--debug',
    ...extra,
  ];
}

test('shared secret from a file, Nova refusing it (403): the secret is nowhere to be seen', async (t) => {
  const dir = tempDir(t);
  const secret = secretLike('agent-secret');
  const novaSecret = secretLike('nova-secret');
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  const nova = await startNova(t, novaSecret);
  const socketPath = join(dir, 'agent.sock');
  const agent = spawnCli(
    t,
    'agent',
    CLI.agent,
    agentArgs(socketPath, nova.port, ['--metadata-proxy-shared-secret-file', secretFile]),
  );
  await agent.waitFor(/metadata-agent listening/);
  const proxy = await startProxy(t, socketPath);

  const { statuses, bodies } = await drive(proxy.url);
  assert.ok(statuses.includes(403), `expected Nova's 403, got ${statuses}`);
  const seen = { agent: visible(agent), proxy: visible(proxy.proc), nova: visible(nova.proc) };
  const logs = {
    agent: await stopAndCollect(agent),
    proxy: await stopAndCollect(proxy.proc),
    nova: await stopAndCollect(nova.proc),
  };
  assert.match(logs.agent, /"code":"MDA_ERR_NOVA_FORBIDDEN"/);
  assert.doesNotMatch(logs.agent, /MDA_CONFIG_EMPTY_SECRET/);
  for (const s of [secret, novaSecret]) {
    assertAbsent(s, 'the answers to the instance', bodies);
    for (const [name, text] of Object.entries(logs)) assertAbsent(s, `the ${name} log`, text);
    for (const [name, text] of Object.entries(seen)) assertAbsent(s, `${name} cmdline/title`, text);
  }
  assert.match(seen.agent, /metadata-agent/);
});

test('shared secret from the environment, world-readable config file: served, warned, never shown', async (t) => {
  const dir = tempDir(t);
  const secret = secretLike('env-secret');
  const config = join(dir, 'metadata_agent.ini');
  writeFileSync(config, '[DEFAULT]\nnova_metadata_timeout = 5\n', { mode: 0o644 });
  const nova = await startNova(t, secret);
  const socketPath = join(dir, 'agent.sock');
  const agent = spawnCli(t, 'agent', CLI.agent, agentArgs(socketPath, nova.port, ['--config-file', config]), {
    NMP_METADATA_PROXY_SHARED_SECRET: secret,
  });
  await agent.waitFor(/metadata-agent listening/);
  const proxy = await startProxy(t, socketPath);

  const { statuses, bodies } = await drive(proxy.url);
  assert.deepEqual(statuses.slice(0, 2), [200, 200]);
  const seen = visible(agent);
  const logs = await stopAndCollect(agent);
  assert.match(logs, /"code":"MDA_CONFIG_WORLD_READABLE"/);
  assert.ok(logs.includes(config), 'the warning names the file');
  assertAbsent(secret, 'the answers to the instance', bodies);
  assertAbsent(secret, 'the agent log', logs);
  assertAbsent(secret, 'agent cmdline/title', seen);
  assertAbsent(secret, 'the proxy log', await stopAndCollect(proxy.proc));
  assertAbsent(secret, 'the nova log', await stopAndCollect(nova.proc));
});

test('a secret in a world-readable config file: warned about, and never printed', async (t) => {
  const dir = tempDir(t);
  const secret = secretLike('ini-secret');
  const config = join(dir, 'metadata_agent.ini');
  writeFileSync(config, `[DEFAULT]\nmetadata_proxy_shared_secret = ${secret}\n`, { mode: 0o644 });
  const nova = await startNova(t, secret);
  const socketPath = join(dir, 'agent.sock');
  const agent = spawnCli(t, 'agent', CLI.agent, agentArgs(socketPath, nova.port, ['--config-file', config]));
  await agent.waitFor(/metadata-agent listening/);
  const proxy = await startProxy(t, socketPath);
  const { statuses } = await drive(proxy.url);
  assert.equal(statuses[0], 200);
  const logs = await stopAndCollect(agent);
  assert.match(logs, /"code":"MDA_CONFIG_WORLD_READABLE"/);
  assertAbsent(secret, 'the agent log', logs);
  // --print-config shows the setting masked.
  const printed = spawnCli(t, 'agent', CLI.agent, ['--config-file', config, '--print-config']);
  assert.equal(await printed.exited, 0);
  assert.match(printed.output(), /metadata_proxy_shared_secret/);
  assertAbsent(secret, '--print-config', printed.output());
});

test('an empty shared secret is warned about at start', async (t) => {
  const dir = tempDir(t);
  const novaPort = await freePort();
  const agent = spawnCli(t, 'agent', CLI.agent, agentArgs(join(dir, 'agent.sock'), novaPort));
  await agent.waitFor(/metadata-agent listening/);
  const logs = await stopAndCollect(agent);
  assert.match(logs, /"level":"warn"[^\n]*"code":"MDA_CONFIG_EMPTY_SECRET"/);
  assert.doesNotMatch(logs, /MDA_CONFIG_WORLD_READABLE/);
});

test('the Keystone password (file or environment, right or wrong) is nowhere to be seen', async (t) => {
  const dir = tempDir(t);
  const password = secretLike('keystone-password');
  const wrong = secretLike('wrong-password');
  const { ports } = JSON.parse(readFileSync(SAMPLE_INVENTORY, 'utf8')) as { ports: FakePort[] };
  const openstack = createFakeOpenStack({ ports, users: [{ name: FAKE_DEFAULTS.username, password }] });
  await openstack.listen();
  t.after(() => openstack.close());
  const secret = secretLike('neutron-run-secret');
  const nova = await startNova(t, secret);

  for (const [how, value, expected] of [
    ['file', password, 200],
    ['env', password, 200],
    ['file', wrong, 503],
    ['env', wrong, 503],
  ] as const) {
    const run = join(dir, `${how}-${expected}`);
    const socketPath = `${run}.sock`;
    const passwordFile = `${run}.password`;
    writeFileSync(passwordFile, value, { mode: 0o600 });
    const agent = spawnCli(
      t,
      'agent',
      CLI.agent,
      [
        ...fakeNeutronResolverArgs(openstack.authUrl),
        '--metadata-proxy-socket',
        socketPath,
        '--nova-metadata-port',
        String(nova.port),
        '--debug',
        ...(how === 'file' ? ['--password-file', passwordFile] : []),
      ],
      {
        NMP_METADATA_PROXY_SHARED_SECRET: secret,
        ...(how === 'env' ? { NMP_NEUTRON__PASSWORD: value } : {}),
      },
    );
    await agent.waitFor(/metadata-agent listening/);
    const proxy = await startProxy(t, socketPath);
    const { statuses, bodies } = await drive(proxy.url);
    assert.equal(statuses[0], expected, `${how}, ${expected}: ${statuses}`);
    const seen = visible(agent);
    const logs = await stopAndCollect(agent);
    for (const s of [value, secret, ...openstack.issuedTokens()]) {
      assertAbsent(s, `the answers (${how})`, bodies);
      assertAbsent(s, `the agent log (${how})`, logs);
      assertAbsent(s, `agent cmdline/title (${how})`, seen);
    }
    await stopAndCollect(proxy.proc);
  }
  assert.ok(openstack.issuedTokens().length >= 2, 'the right password was never used');
  await stopAndCollect(nova.proc);
});
