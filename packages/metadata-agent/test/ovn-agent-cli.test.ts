/*
 * The metadata-agent program with neutron's OVN options (resolver = auto picks ovn): a real Southbound, a
 * stand-in Nova recording what it gets, requests over the agent's socket as our proxy sends them
 * (X-OVN-Network-ID). Checked at the program's edges: the signed X-Instance-ID and X-Tenant-ID from the
 * index, 404 for an address of another network, /readyz and the nmp_ovn_* metrics on the admin socket;
 * then a Southbound outage: answers go on from the last copy while /readyz says why and is 503, and come back
 * current after the server returns.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { signInstanceId } from '@nmp/common';
import { freeLowPort, OVN_SB_SCHEMA, promValue, requireTools, sleep, unixHttpGet } from '@nmp/testkit';
import { startStubNova, tempDir, viaSocket } from './helpers.js';
import { NET1, NET2, PROJECT, populateCloud, sbOps, startSouthbound, until } from './ovn-helpers.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const SECRET = 'ovn-cli-secret';

test('metadata-agent with [ovn] options: lookups from the Southbound index, readiness through an outage', async (t) => {
  if (!requireTools(t, ['ovsdb-server', 'ovsdb-tool', 'ovsdb-client'], [OVN_SB_SCHEMA])) return;
  const sb = await startSouthbound(t, await freeLowPort());
  await populateCloud(sb);
  const hv1 = await sb.chassis('hv1');
  await sb.transact([
    sbOps.port({
      id: 'vm-a',
      datapath: await sb.datapath(NET1),
      tunnelKey: 1,
      mac: 'fa:16:3e:0a:00:05',
      ips: ['10.0.0.5'],
      deviceId: 'inst-a',
      projectId: PROJECT,
      networkId: NET1,
      chassis: hv1,
    }),
  ]);
  const nova = await startStubNova(t);
  const dir = tempDir(t);
  const socketPath = join(dir, 'metadata_proxy');
  const admin = join(dir, 'admin.sock');
  const child = spawn(
    process.execPath,
    [
      CLI,
      '--metadata-proxy-socket',
      socketPath,
      '--admin-socket',
      admin,
      '--nova-metadata-port',
      String(nova.port),
      '--ovn-sb-connection',
      sb.server.tcpRemote,
      '--ovn-chassis-name',
      'hv1',
      '--ovn-ovsdb-probe-interval',
      '1000',
    ],
    { env: { ...process.env, NMP_METADATA_PROXY_SHARED_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  t.after(() => {
    child.kill('SIGKILL');
  });
  await until('the agent', () => existsSync(socketPath) && /metadata-agent listening/.test(out), 15_000);
  assert.match(out, /"resolver":"ovn"/);

  const ask = (network: string, ip: string) =>
    viaSocket(socketPath, {
      path: '/openstack/latest/meta_data.json',
      headers: { 'x-ovn-network-id': network, 'x-forwarded-for': ip },
    });
  await until('the index', async () => (await ask(NET1, '10.0.0.5')).status === 200);
  const seen = nova.seen.at(-1)!;
  assert.equal(seen.headers['x-instance-id'], 'inst-a');
  assert.equal(seen.headers['x-tenant-id'], PROJECT);
  assert.equal(seen.headers['x-instance-id-signature'], signInstanceId(SECRET, 'inst-a'));
  assert.equal((await ask(NET2, '10.0.0.5')).status, 404);

  await until('ready', async () => (await unixHttpGet(admin, '/readyz')).status === 200);
  const metrics = (await unixHttpGet(admin, '/metrics')).body;
  assert.match(metrics, /^nmp_ovn_southbound_connected 1$/m);
  assert.match(metrics, /^nmp_ovn_port_bindings_indexed 1$/m);
  const requestsBefore = promValue(metrics, 'nmp_ovn_southbound_requests_total');
  for (let i = 0; i < 50; i++) assert.equal((await ask(NET1, '10.0.0.5')).status, 200);
  const requestsAfter = promValue(
    (await unixHttpGet(admin, '/metrics')).body,
    'nmp_ovn_southbound_requests_total',
  );
  assert.equal(requestsAfter, requestsBefore, 'lookups send nothing to the Southbound');

  // The Southbound goes away: the last copy answers, /readyz is 503 and says why.
  await sb.server.stopProcess();
  await until('not ready', async () => (await unixHttpGet(admin, '/readyz')).status === 503, 10_000);
  const why = await unixHttpGet(admin, '/readyz');
  assert.match(why.body, /Southbound disconnected/);
  assert.equal((await ask(NET1, '10.0.0.5')).status, 200, 'still served from the last copy');
  assert.match((await unixHttpGet(admin, '/metrics')).body, /^nmp_ovn_southbound_connected 0$/m);

  await sb.server.startProcess();
  await until('ready again', async () => (await unixHttpGet(admin, '/readyz')).status === 200, 20_000);
  assert.equal((await ask(NET1, '10.0.0.5')).status, 200);
  await sleep(0);
});
