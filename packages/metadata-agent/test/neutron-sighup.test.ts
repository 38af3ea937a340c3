/*
 * Issue 23, item 2, as an operator meets it: the real agent process (resolver = neutron) started with a
 * wrong [neutron] password against the fake OpenStack. A burst of instance requests costs one Keystone
 * login and one log line; SIGHUP with the same file logs in no more; SIGHUP after fixing the password logs
 * in at once (before any request) and the next request is served.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createFakeOpenStack, FAKE_DEFAULTS, generatePorts } from '@nmp/openstack-fakes';
import { startStubNova, tempDir } from './helpers.js';
import { startAgentCli } from './rpc-agent.js';

const WRONG = 'wrong-password-4711';

test('SIGHUP: refused credentials wait; changed credentials log in at once', async (t) => {
  const topo = generatePorts({ networks: 1, instancesPerNetwork: 20 });
  const fake = createFakeOpenStack({ ports: topo.ports });
  await fake.listen();
  t.after(() => fake.close());
  const nova = await startStubNova(t);
  const dir = tempDir(t);
  const socketPath = join(dir, 'metadata_proxy');
  const conf = join(dir, 'metadata_agent.ini');
  const write = (password: string) =>
    writeFileSync(
      conf,
      [
        '[DEFAULT]',
        `state_path = ${dir}`,
        `metadata_proxy_socket = ${socketPath}`,
        'nova_metadata_host = 127.0.0.1',
        `nova_metadata_port = ${nova.port}`,
        'metadata_proxy_shared_secret = s3cr3t',
        'resolver = neutron',
        '[neutron]',
        `auth_url = ${fake.authUrl}`,
        `username = ${FAKE_DEFAULTS.username}`,
        `password = ${password}`,
        'user_domain_name = Default',
        `project_name = ${FAKE_DEFAULTS.projectName}`,
        'project_domain_name = Default',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  write(WRONG);
  const agent = await startAgentCli(t, ['--config-file', conf], socketPath);
  const request = (i: number) =>
    agent.get({ 'x-neutron-network-id': topo.networks[0]!, 'x-forwarded-for': topo.instances[i]!.ip });

  const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => request(i)));
  assert.deepEqual(new Set(burst.map((r) => r.status)), new Set([503]));
  for (let i = 0; i < 10; i++) assert.equal((await request(i)).status, 503);
  assert.equal(fake.counts.tokenRequests, 1, 'Keystone logins for 30 requests');
  // The log is written in batches: wait for the 30 request lines.
  const failedRequests = () => agent.lines().filter((l) => l.msg === 'request' && l.status === 503);
  await agent.waitForLine(() => failedRequests().length >= 30, 10_000, '30 request lines');
  assert.ok(failedRequests().every((l) => l.code === 'MDA_ERR_RESOLVER_UNAVAILABLE'));
  const refused = agent.lines().filter((l) => String(l.msg).startsWith('keystone refused'));
  assert.equal(refused.length, 1, 'one log line for the refusal');
  assert.equal(refused[0]!.status, 401);

  // The same file again: nothing to log in with that was not refused already.
  const reloaded = (n: number) => agent.lines().filter((l) => l.code === 'MDA_CONFIG_RELOADED').length >= n;
  agent.child.kill('SIGHUP');
  await agent.waitForLine(() => reloaded(1), 10_000, 'the first reload');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(fake.counts.tokenRequests, 1, 'SIGHUP without a change: no login');

  write(FAKE_DEFAULTS.password);
  agent.child.kill('SIGHUP');
  await agent.waitForLine(() => reloaded(2), 10_000, 'the second reload');
  const second = agent.lines().filter((l) => l.code === 'MDA_CONFIG_RELOADED')[1]!;
  assert.deepEqual(second.applied, ['password']);
  assert.equal(second.keystone, 'login');
  await agent.waitForLine((l) => l.msg === 'keystone token obtained', 10_000, 'the login');
  assert.equal(fake.counts.tokens, 1, 'logged in before any request asked');
  assert.equal((await request(0)).status, 200);
  assert.equal(fake.counts.tokenRequests, 2);
  assert.equal(await agent.metric('nmp_keystone_tokens_issued_total'), 1);
  assert.equal(await agent.metric('nmp_keystone_auth_failures_total'), 1);
  assert.ok(!agent.text().includes(WRONG) && !agent.text().includes(FAKE_DEFAULTS.password));
  await agent.stop();
});
