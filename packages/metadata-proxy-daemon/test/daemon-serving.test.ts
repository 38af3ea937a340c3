/*
 * Daemon mode applies the serving settings the standalone proxy applies (as root, in namespaces, the
 * daemon CLI started from a config file): [metadata_ssrf] (a required header), timeout_client (a reader
 * that stops reading has its answer cut), the per-source connection cap and the first-byte timeout (one
 * instance address floods 1,100 idle connections, the other address of the same instance network is served
 * meanwhile), and metrics with health on its admin socket. Before, the daemon accepted every one of these
 * options and applied none.
 *
 * The instance namespace has two addresses on one network; requests come from inside it. The agent is a
 * stand-in on the UNIX socket (what it answers is not under test): `served <X-Forwarded-For>`, and for
 * /big a 32 MiB answer.
 */
import assert from 'node:assert/strict';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { promValue as metric, NetnsLab, requireRoot, sleep, tempDir, unixHttpGet } from '@nmp/testkit';
import { daemonClient } from '../src/protocol.js';
import { DAEMON_CLI } from './fixture.js';

const A = '10.250.0.11';
const B = '10.250.0.12';
const URL = 'http://169.254.169.254/openstack/latest/meta_data.json';
const FLAVOR = { 'Metadata-Flavor': 'OpenStack' };
const BIG = 32 * 1024 * 1024;

/** Runs in the instance namespace: `n` idle connections from `from`; reports how many the proxy closed. */
const FLOODER = `
const net = require('node:net');
const [host, from, n] = [process.argv[1], process.argv[2], Number(process.argv[3])];
let closed = 0, connected = 0;
const t0 = Date.now();
for (let i = 0; i < n; i++) {
  const s = net.connect({ host, port: 80, localAddress: from });
  s.on('connect', () => { connected++; });
  s.on('error', () => {});
  s.on('close', () => { closed++; });
}
const report = () => process.stdout.write(JSON.stringify({ ms: Date.now() - t0, connected, closed }) + '\\n');
setInterval(report, 250);
setTimeout(() => process.exit(0), 20000);
`;

/**
 * Runs in the instance namespace: GET /big, then read nothing for 8 s, then read what is left. An answer
 * cut by the proxy arrives short; an answer left waiting for the reader arrives whole.
 */
const SLOW_READER = `
const net = require('node:net');
const [host, from] = [process.argv[1], process.argv[2]];
const s = net.connect({ host, port: 80, localAddress: from }, () => {
  s.write('GET /big HTTP/1.1\\r\\nHost: 169.254.169.254\\r\\nMetadata-Flavor: OpenStack\\r\\nConnection: close\\r\\n\\r\\n');
  s.pause();
  setTimeout(() => s.resume(), 8000);
});
let bytes = 0;
s.on('data', (d) => { bytes += d.length; });
s.on('error', () => {});
s.on('close', () => { process.stdout.write(JSON.stringify({ bytes }) + '\\n'); process.exit(0); });
setTimeout(() => { process.stdout.write(JSON.stringify({ bytes, open: true }) + '\\n'); process.exit(0); }, 40000);
`;

async function startAgent(t: TestContext, dir: string): Promise<string> {
  const socketPath = join(dir, 'agent.sock');
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  const agent = createServer((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': BIG });
      let sent = 0;
      const more = () => {
        while (sent < BIG) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
      return;
    }
    res.end(`served ${req.headers['x-forwarded-for']}\n`);
  });
  await new Promise<void>((r) => agent.listen(socketPath, () => r()));
  chmodSync(socketPath, 0o777);
  t.after(
    () =>
      new Promise<void>((r) => {
        agent.close(() => r());
        agent.closeAllConnections();
      }),
  );
  return socketPath;
}

test('daemon mode enforces [metadata_ssrf], timeout_client, the per-source cap and the first-byte timeout, and serves metrics', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const dir = tempDir(t, `nmp-daemon-serving-${lab.prefix}-`);
  chmodSync(dir, 0o755);

  const dhcp = await lab.addNamespace('d');
  const vm = await lab.addNamespace('v');
  const { dev1, dev2 } = await lab.addVethPair(dhcp, vm);
  await lab.addAddress(dhcp, dev1, '10.250.0.2/24');
  await lab.addAddress(dhcp, dev1, '169.254.169.254/32');
  await lab.addAddress(vm, dev2, `${A}/24`);
  await lab.addAddress(vm, dev2, `${B}/24`);
  await lab.addRoute(vm, '169.254.169.254/32', { via: '10.250.0.2' });

  const agentSocket = await startAgent(t, dir);
  const state = join(dir, 'state');
  const admin = join(state, 'admin.sock');
  const control = join(state, 'nmp-metadata-proxy-daemon', 'control.sock');
  const conf = join(dir, 'daemon.ini');
  writeFileSync(
    conf,
    [
      '[DEFAULT]',
      `state_path = ${state}`,
      `metadata_proxy_socket = ${agentSocket}`,
      'metadata_proxy_user = nobody',
      'namespace_check_interval = 1',
      `admin_socket = ${admin}`,
      'max_connections_per_source = 50',
      'timeout_first_byte = 2',
      'log_level = warn',
      '[metadata_haproxy]',
      'timeout_client = 1',
      '[metadata_ssrf]',
      'required_header = Metadata-Flavor: OpenStack',
      '',
    ].join('\n'),
  );
  const daemon = lab.spawn(undefined, process.execPath, [DAEMON_CLI, '--config-file', conf]);
  for (let i = 0; ; i++) {
    try {
      await daemonClient.list(control, 2_000);
      break;
    } catch (err) {
      if (daemon.process.exitCode !== null || i > 150)
        throw new Error(`daemon did not start (${(err as Error).message}):\n${daemon.output()}`);
      await sleep(100);
    }
  }
  await daemonClient.attach(control, {
    id: 'net-serving',
    mode: 'network',
    namespace: dhcp,
    binds: ['169.254.169.254:80'],
  });

  // [metadata_ssrf] required_header.
  const refused = await lab.httpGet(vm, URL, { localAddress: A });
  assert.equal(refused.status, 403, refused.text);
  assert.equal(refused.text, 'A required request header is missing or wrong.\n');
  const served = await lab.httpGet(vm, URL, { localAddress: A, headers: FLAVOR });
  assert.equal(served.status, 200);
  assert.equal(served.text, `served ${A}\n`);

  // One address floods; the other address of the same network is served meanwhile.
  const flooder = lab.spawn(vm, process.execPath, ['-e', FLOODER, '169.254.169.254', A, '1100']);
  const cut = await flooder.waitForOutput(/"connected":1100,"closed":1050\}/, 10_000);
  assert.ok(cut);
  const neighbour = await lab.httpGet(vm, URL, { localAddress: B, headers: FLAVOR });
  assert.equal(neighbour.status, 200);
  assert.equal(neighbour.text, `served ${B}\n`);
  const during = (await unixHttpGet(admin, '/metrics')).body;
  assert.equal(metric(during, 'nmp_proxy_refused_total', { reason: 'source_connections' }), 1050);
  // The 50 it holds send nothing: closed after timeout_first_byte (2 s).
  await flooder.waitForOutput(/"closed":1100\}/, 10_000);
  const last = flooder.output().trim().split('\n').pop()!;
  assert.ok((JSON.parse(last) as { ms: number }).ms < 8_000, last);
  await flooder.stop();

  // timeout_client: a reader that stops reading is cut after 1 s of not reading; the answer arrives short.
  const reader = lab.spawn(vm, process.execPath, ['-e', SLOW_READER, '169.254.169.254', A]);
  const m = await reader.waitForOutput(/\{"bytes":\d+[^\n]*\}/, 45_000);
  const got = JSON.parse(m[0]) as { bytes: number; open?: boolean };
  assert.equal(got.open, undefined, 'the connection was still open after 40 s');
  assert.ok(got.bytes < BIG, `the whole answer arrived (${got.bytes} bytes): timeout_client was not applied`);

  // The admin socket: root-only, the worker's figures and the supervisor's.
  assert.equal(statSync(admin).mode & 0o777, 0o600);
  const metrics = await unixHttpGet(admin, '/metrics');
  assert.equal(metrics.status, 200);
  const text = metrics.body;
  assert.ok(metric(text, 'nmp_proxy_refused_total', { reason: 'header_missing' }) >= 1);
  assert.equal(metric(text, 'nmp_proxy_refused_total', { reason: 'first_byte_timeout' }), 50);
  assert.ok(metric(text, 'nmp_proxy_requests_total', { status: '200' }) >= 2);
  assert.equal(metric(text, 'nmp_daemon_attachments', { state: 'listening' }), 1);
  assert.equal(metric(text, 'nmp_daemon_worker_up'), 1);
  assert.match(text, /^nmp_proxy_info\{mode="daemon",id="",version="[^"]+"\} 1$/m);
  const health = await unixHttpGet(admin, '/healthz');
  assert.deepEqual([health.status, health.body], [200, 'ok\n']);
  const ready = await unixHttpGet(admin, '/readyz');
  assert.deepEqual([ready.status, ready.body], [200, 'ready\n']);
  await daemon.stop();
});
