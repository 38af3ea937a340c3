/*
 * The drop-in path for neutron (as root, in namespaces): neutron's DHCP/L3 agents run
 * `ip netns exec <ns> haproxy -f <generated config>`; with `haproxy` being our CLI, the proxy must come up
 * from that file as it is (fixtures in reference.md §2.2's shapes, network and router, with and without
 * rate limiting), listen where it says, drop to its user, and stamp the headers it describes, while a
 * stand-in agent on the UNIX socket records what arrives. Stopping goes through `haproxy-kill`.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isProcessAlive, NetnsLab, requireRoot, runCommand, sleep, tempDir } from '@nmp/testkit';
import type { ProxyStatus } from '../src/proxy-status.js';
import { HOOKS_CLI } from './chain-fixture.js';

const fixtures = fileURLToPath(new URL('../../../ns-metadata-proxy/test/fixtures/', import.meta.url));
const NET = '9d2c7a5e-3c0b-4c3c-9d55-6f1b7c1f0a11';
const ROUTER = '5b3f6e2d-1a4c-4e8f-9b0a-7c6d5e4f3a21';

interface FakeAgent {
  readonly dir: string;
  readonly socketPath: string;
  readonly seen: IncomingHttpHeaders[];
}

/** A stand-in metadata agent on a UNIX socket that records each request's headers. */
async function fakeAgent(t: TestContext): Promise<FakeAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'nmp-compat-'));
  chmodSync(dir, 0o755);
  const socketPath = join(dir, 'metadata_proxy');
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true }));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  chmodSync(socketPath, 0o666);
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, socketPath, seen };
}

/**
 * A fixture with the site-specific parts (socket, pid file, user, device) replaced, laid out as neutron
 * does: `<state>/ns-metadata-proxy/<id>.conf` and `<state>/external/pids/<id>.pid.haproxy`.
 */
function adapt(
  name: string,
  agent: FakeAgent,
  tap?: string,
): { file: string; pidFile: string; state: string } {
  const original = readFileSync(join(fixtures, name), 'utf8');
  const id = /(?:set-header X-Neutron-(?:Network|Router)|add-header X-OVN-Network)-ID (\S+)/.exec(
    original,
  )![1]!;
  // neutron's OVN metadata agent keeps its files in <state>/ovn-metadata-proxy/.
  const configDir = original.includes('X-OVN-') ? 'ovn-metadata-proxy' : 'ns-metadata-proxy';
  const state = join(agent.dir, 'state');
  mkdirSync(join(state, configDir), { recursive: true });
  mkdirSync(join(state, 'external', 'pids'), { recursive: true });
  const pidFile = join(state, 'external', 'pids', `${id}.pid.haproxy`);
  let text = original
    .replace('/var/lib/neutron/metadata_proxy', agent.socketPath)
    .replace(/^(\s*pidfile\s+)\S+/m, `$1${pidFile}`)
    .replace(/^(\s*user\s+)\S+/m, '$1nobody')
    .replace(/^(\s*group\s+)\S+/m, '$1nogroup');
  if (tap) text = text.replace(/interface \S+/, `interface ${tap}`);
  const file = join(state, configDir, `${id}.conf`);
  writeFileSync(file, text);
  return { file, pidFile, state };
}

/** What neutron runs, with `haproxy` being a symlink to the metadata-hooks CLI. */
async function neutronSpawns(lab: NetnsLab, ns: string, agent: FakeAgent, conf: string) {
  const haproxy = join(agent.dir, 'haproxy');
  try {
    symlinkSync(HOOKS_CLI, haproxy);
  } catch {
    // already linked for an earlier variant
  }
  return lab.exec(ns, process.execPath, [haproxy, '-f', conf], {
    allowFailure: true,
    timeoutMs: 30_000,
    // What an agent's environment may hold: it must not reach the proxy.
    env: { ...process.env, OS_PASSWORD: 'neutron-shell-password' },
  });
}

function stopLater(lab: NetnsLab, pidFile: string): void {
  lab.defer(async () => {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  });
}

const SPOOF = {
  'X-Forwarded-For': '6.6.6.6',
  'X-Neutron-Router-ID': 'spoofed-router',
  'X-Neutron-Network-ID': 'spoofed-network',
  'X-Instance-ID': 'evil',
};

test('neutron DHCP haproxy config (dual-stack, bracketed v6 bind): listens, drops to nobody, stamps the network id', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const agent = await fakeAgent(t);
  const dhcp = await lab.addNamespace('qdhcp');
  const vm = await lab.addNamespace('vm');
  const { dev1: tap, dev2: vmDev } = await lab.addVethPair(dhcp, vm, { dev1: lab.devName('tap') });
  await lab.addAddress(dhcp, tap, '10.250.0.2/24');
  await lab.addAddress(dhcp, tap, '169.254.169.254/32');
  await lab.addAddress(dhcp, tap, 'fe80::a9fe:a9fe/64');
  await lab.addAddress(vm, vmDev, '10.250.0.11/24');
  await lab.addRoute(vm, '169.254.169.254/32', { via: '10.250.0.2' });
  await lab.waitForDad(dhcp, tap);
  await lab.waitForDad(vm, vmDev);

  const { file, pidFile, state } = adapt('dhcp-network-dualstack.conf', agent, tap);
  // `haproxy -c -f` validates like haproxy does.
  const check = await lab.exec(dhcp, process.execPath, [HOOKS_CLI, 'haproxy-compat', '-c', '-f', file]);
  assert.match(check.stdout, new RegExp(`valid \\(network ${NET}\\)`));

  const r = await neutronSpawns(lab, dhcp, agent, file);
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  stopLater(lab, pidFile);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  assert.ok(isProcessAlive(pid));
  // neutron's "active" test: the pid's command line names the network id.
  assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), new RegExp(NET));
  // The pid file is written as root (its directory is root's), the privileges are dropped right after:
  // on a busy machine the drop-in may return between the two.
  const dropped = /^Uid:\s+65534\s+65534\s+65534\s+65534$/m;
  for (let i = 0; i < 50 && !dropped.test(readFileSync(`/proc/${pid}/status`, 'utf8')); i++) await sleep(100);
  assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), dropped);
  assert.doesNotMatch(readFileSync(`/proc/${pid}/environ`, 'utf8'), /OS_PASSWORD|neutron-shell-password/);
  const listening = (await lab.listeners(dhcp)).join('\n');
  assert.match(listening, /169\.254\.169\.254:80/);
  assert.match(listening, /\[fe80::a9fe:a9fe\]%\S+:80|fe80::a9fe:a9fe%\S+:80/);

  const r4 = await lab.httpGet(vm, 'http://169.254.169.254/openstack/latest/meta_data.json', {
    headers: SPOOF,
  });
  assert.equal(r4.status, 200, r4.text);
  const r6 = await lab.httpGet(vm, {
    host: `fe80::a9fe:a9fe%${vmDev}`,
    path: '/latest/meta-data/',
    headers: SPOOF,
  });
  assert.equal(r6.status, 200, r6.text);
  assert.equal(agent.seen.length, 2);
  const [h4, h6] = agent.seen as [IncomingHttpHeaders, IncomingHttpHeaders];
  assert.equal(h4['x-neutron-network-id'], NET);
  assert.equal(h4['x-neutron-router-id'], undefined);
  assert.equal(h4['x-forwarded-for'], '10.250.0.11');
  assert.equal(h4['x-instance-id'], undefined);
  assert.equal(h6['x-neutron-network-id'], NET);
  assert.match(String(h6['x-forwarded-for']), /^fe80::[0-9a-f:]+$/);

  // `metadata-hooks status` sees proxies neutron started through the drop-in too.
  const st = await runCommand(undefined, process.execPath, [
    HOOKS_CLI,
    'status',
    '--json',
    '--state-path',
    state,
  ]);
  const [s0] = JSON.parse(st.stdout) as ProxyStatus[];
  assert.equal(s0!.kind, 'neutron');
  assert.equal(s0!.program, 'ns-metadata-proxy');
  assert.deepEqual(s0!.identity, { mode: 'network', id: NET });
  assert.equal(s0!.namespace, dhcp);
  assert.equal(s0!.pid, pid);
  assert.equal(s0!.healthy, true, JSON.stringify(s0));
  assert.deepEqual([...s0!.listening].sort(), ['169.254.169.254:80', '[fe80::a9fe:a9fe]:80']);

  // neutron destroys it: its kill script, then the config is deleted. The drop-in's log goes with it.
  const log = `${file}.log`;
  assert.match(readFileSync(log, 'utf8'), /ns-metadata-proxy listening/);
  const kill = await runCommand(undefined, process.execPath, [HOOKS_CLI, 'haproxy-kill', '15', String(pid)]);
  assert.equal(kill.code, 0);
  for (let i = 0; i < 100 && isProcessAlive(pid); i++) await sleep(50);
  assert.equal(isProcessAlive(pid), false);
  assert.deepEqual(await lab.listeners(dhcp), []);
  rmSync(file);
  assert.deepEqual(
    readdirSync(dirname(file)),
    [],
    'nothing of the destroyed proxy is left beside its config',
  );
});

test('neutron L3 haproxy config (:::9697): router id stamped for IPv4 clients of the dual-stack socket', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const agent = await fakeAgent(t);
  const router = await lab.addNamespace('qrouter');
  const vm = await lab.addNamespace('vm');
  const { dev1, dev2 } = await lab.addVethPair(router, vm);
  await lab.addAddress(router, dev1, '10.249.0.1/24');
  await lab.addAddress(vm, dev2, '10.249.0.11/24');

  const { file, pidFile } = adapt('l3-router-dualstack.conf', agent);
  const r = await neutronSpawns(lab, router, agent, file);
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  stopLater(lab, pidFile);
  assert.match((await lab.listeners(router)).join('\n'), /\[::\]:9697|\*:9697/);
  const res = await lab.httpGet(vm, 'http://10.249.0.1:9697/openstack', { headers: SPOOF });
  assert.equal(res.status, 200, res.text);
  const h = agent.seen[0]!;
  assert.equal(h['x-neutron-router-id'], ROUTER);
  assert.equal(h['x-neutron-network-id'], undefined);
  assert.equal(h['x-forwarded-for'], '10.249.0.11');
});

test('neutron OVN metadata agent haproxy config: X-OVN-Network-ID stamped, the client copy (which haproxy keeps) gone', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const agent = await fakeAgent(t);
  const meta = await lab.addNamespace('ovnmeta');
  const vm = await lab.addNamespace('vm');
  const { dev1, dev2 } = await lab.addVethPair(meta, vm);
  await lab.addAddress(meta, dev1, '10.247.0.2/24');
  await lab.addAddress(meta, dev1, '169.254.169.254/32');
  await lab.addAddress(vm, dev2, '10.247.0.11/24');
  await lab.addRoute(vm, '169.254.169.254/32', { via: '10.247.0.2' });

  const { file, pidFile } = adapt('ovn-network-v4.conf', agent);
  const r = await neutronSpawns(lab, meta, agent, file);
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  stopLater(lab, pidFile);
  const res = await lab.httpGet(vm, 'http://169.254.169.254/openstack', {
    headers: { ...SPOOF, 'X-OVN-Network-ID': 'spoofed-ovn' },
  });
  assert.equal(res.status, 200, res.text);
  const h = agent.seen[0]!;
  assert.equal(h['x-ovn-network-id'], '7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
  assert.equal(h['x-neutron-network-id'], undefined);
  assert.equal(h['x-neutron-router-id'], undefined);
  assert.equal(h['x-forwarded-for'], '10.247.0.11');
});

test('neutron L3 haproxy config with rate-limit tables (0.0.0.0:9697): listens and stamps the router id', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const agent = await fakeAgent(t);
  const router = await lab.addNamespace('qrouter');
  const vm = await lab.addNamespace('vm');
  const { dev1, dev2 } = await lab.addVethPair(router, vm);
  await lab.addAddress(router, dev1, '10.248.0.1/24');
  await lab.addAddress(vm, dev2, '10.248.0.11/24');

  const { file, pidFile } = adapt('l3-router-v4-ratelimit.conf', agent);
  const r = await neutronSpawns(lab, router, agent, file);
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  stopLater(lab, pidFile);
  assert.match((await lab.listeners(router)).join('\n'), /0\.0\.0\.0:9697/);
  const res = await lab.httpGet(vm, 'http://10.248.0.1:9697/', { headers: SPOOF });
  assert.equal(res.status, 200);
  assert.equal(agent.seen[0]!['x-neutron-router-id'], ROUTER);
  assert.equal(agent.seen[0]!['x-forwarded-for'], '10.248.0.11');

  // The config asks for 10 requests per 10 s per source (reference §2.5): the 11th is refused.
  await t.test('11th request within the window gets 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await lab.httpGet(vm, 'http://10.248.0.1:9697/')).status);
    // One request was made above: 9 more pass, then 429.
    assert.deepEqual(statuses, [...Array(9).fill(200), 429]);
  });
});

test('haproxy-compat refuses what it cannot honour; haproxy-kill signals only our proxies', async (t) => {
  if (!requireRoot(t)) return;
  const dir = tempDir(t, 'nmp-compat-');
  const bad = join(dir, 'bad.conf');
  writeFileSync(bad, 'global\n    user nobody\nlisten listener\n    bind 169.254.169.254:80\n');
  const check = await runCommand(
    undefined,
    process.execPath,
    [HOOKS_CLI, 'haproxy-compat', '-c', '-f', bad],
    {
      allowFailure: true,
    },
  );
  assert.notEqual(check.code, 0);
  assert.match(check.stderr, /bad\.conf:3: the 'listen' section has no 'server/);
  const flags = await runCommand(
    undefined,
    process.execPath,
    [HOOKS_CLI, 'haproxy-compat', '-sf', '1', '-f', bad],
    {
      allowFailure: true,
    },
  );
  assert.equal(flags.code, 2);
  assert.match(flags.stderr, /unsupported haproxy option '-sf'/);

  const lab = await NetnsLab.create(t);
  const sleeper = lab.spawn(undefined, 'sleep', ['30']);
  const kill = await runCommand(
    undefined,
    process.execPath,
    [HOOKS_CLI, 'haproxy-kill', '15', String(sleeper.pid)],
    {
      allowFailure: true,
    },
  );
  assert.equal(kill.code, 1);
  assert.match(kill.stderr, /not an ns-metadata-proxy; refusing/);
  assert.ok(isProcessAlive(sleeper.pid));
});
