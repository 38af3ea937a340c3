/*
 * The SSRF defences configured as an operator does (docs/security.md): a global file every proxy reads,
 * a per-proxy file and flags that override it, the node key file that lets a restarted proxy accept the
 * tokens it issued before, --print-config, and a refused configuration. The real proxy CLI in front of
 * the in-process chain's agent socket.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fetchFrom, INSTANCE_A, NETWORK, startChain } from './chain-harness.js';
import { CLI, freePort, type Proc, spawnCli, tempDir } from './fault-harness.js';

function files(dir: string): { global: string; perProxy: string; key: string } {
  const key = join(dir, 'token.key');
  const global = join(dir, 'metadata_proxy.ini');
  writeFileSync(
    global,
    [
      '[metadata_ssrf]',
      'token_mode = optional',
      `token_key_file = ${key}`,
      'required_header = Metadata-Flavor: OpenStack',
      'path_deny = /**/password',
      '',
    ].join('\n'),
  );
  const perProxy = join(dir, `qdhcp-${NETWORK}.ini`);
  writeFileSync(perProxy, '[metadata_ssrf]\ntoken_mode = required\n');
  return { global, perProxy, key };
}

async function startProxyCli(
  t: Parameters<typeof spawnCli>[0],
  socketPath: string,
  port: number,
  args: readonly string[],
): Promise<Proc> {
  const proc = spawnCli(t, 'ns-metadata-proxy', CLI.proxy, [
    '--bind',
    `127.0.0.1:${port}`,
    '--network-id',
    NETWORK,
    '--metadata-proxy-socket',
    socketPath,
    ...args,
  ]);
  await proc.waitFor(/ns-metadata-proxy listening/);
  return proc;
}

async function token(port: number): Promise<string> {
  const r = await fetchFrom(port, '/latest/api/token', {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '300' },
  });
  assert.equal(r.status, 200, r.body.toString());
  return r.body.toString();
}

test('global file < per-proxy file < flags; the key file outlives a restart', async (t) => {
  const chain = await startChain(t);
  const dir = tempDir(t, 'nmp-ssrf-cli-');
  const f = files(dir);
  const port = await freePort();
  const args = [
    '--config-file',
    f.global,
    '--config-file',
    f.perProxy,
    '--path-deny',
    '/openstack/*/user_data',
  ];
  const first = await startProxyCli(t, chain.socketPath, port, args);

  // required (per-proxy file) beat optional (global file).
  assert.equal(
    (
      await fetchFrom(port, '/openstack/latest/meta_data.json', {
        headers: { 'Metadata-Flavor': 'OpenStack' },
      })
    ).status,
    401,
  );
  const tok = await token(port);
  const ok = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'X-aws-ec2-metadata-token': tok },
  });
  assert.equal(ok.status, 200);
  assert.equal((JSON.parse(ok.body.toString()) as { uuid: string }).uuid, INSTANCE_A);
  // The flag's path_deny replaced the global one: user_data is denied, password is not.
  const userData = await fetchFrom(port, '/openstack/latest/user_data', {
    headers: { 'X-aws-ec2-metadata-token': tok },
  });
  assert.equal(userData.status, 403);
  const password = await fetchFrom(port, '/openstack/latest/password', {
    headers: { 'X-aws-ec2-metadata-token': tok },
  });
  assert.equal(password.status, 200);

  // Restart: the node key comes from the file, so the token issued before is still good.
  first.child.kill('SIGTERM');
  await first.exited;
  await startProxyCli(t, chain.socketPath, port, args);
  const again = await fetchFrom(port, '/openstack/latest/meta_data.json', {
    headers: { 'X-aws-ec2-metadata-token': tok },
  });
  assert.equal(again.status, 200);
});

test('--print-config lists [metadata_ssrf]; an impossible required header is refused at start', async (t) => {
  const dir = tempDir(t, 'nmp-ssrf-cli-');
  const f = files(dir);
  const print = spawnCli(t, 'print', CLI.proxy, [
    '--config-file',
    f.global,
    '--network-id',
    NETWORK,
    '--print-config',
  ]);
  assert.equal(await print.exited, 0, print.output());
  assert.match(print.output(), /token_mode/);
  assert.match(print.output(), /required_header/);
  assert.match(print.output(), /Metadata-Flavor: OpenStack/);

  const bad = join(dir, 'bad.ini');
  writeFileSync(bad, '[metadata_ssrf]\nrequired_header = X-Forwarded-For: 10.0.0.1\n');
  const refused = spawnCli(t, 'bad', CLI.proxy, [
    '--config-file',
    bad,
    '--network-id',
    NETWORK,
    '--bind',
    '127.0.0.1:0',
  ]);
  assert.equal(await refused.exited, 2);
  assert.match(refused.output(), /bad\.ini:2.*required_header.*cannot be required/);
});
