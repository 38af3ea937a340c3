/*
 * The agent's one log line per request says what the instance got. When Keystone refuses the agent's
 * password the instance gets 503 (MDA_ERR_RESOLVER_UNAVAILABLE); Keystone's own 401 belongs in the line
 * too, but as the upstream's status, not as the request's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '@nmp/common';
import { createFakeOpenStack, FAKE_DEFAULTS, generatePorts } from '@nmp/openstack-fakes';
import { createNeutronResolver } from '../src/neutron/index.js';
import { CachingResolver } from '../src/resolver/caching-resolver.js';
import { startAgent, startStubNova, viaSocket } from './helpers.js';

test('Keystone refuses the password: the instance gets 503, and the log line says 503 (Keystone 401 as upstreamStatus)', async (t) => {
  const topo = generatePorts({ networks: 1, instancesPerNetwork: 1 });
  const port = topo.instances[0]!;
  const fake = createFakeOpenStack({ ports: topo.ports });
  await fake.listen();
  t.after(() => fake.close());
  const nova = await startStubNova(t);
  const neutron = createNeutronResolver(
    {
      authUrl: fake.authUrl,
      authType: 'password',
      username: FAKE_DEFAULTS.username,
      password: 'not-the-password',
      userDomainName: 'Default',
      projectName: FAKE_DEFAULTS.projectName,
      projectDomainName: 'Default',
    },
    silentLogger(),
  );
  const resolver = new CachingResolver(neutron, { ttlMs: 5000, negativeTtlMs: 0, maxEntries: 100 });
  const { socketPath, logs } = await startAgent(t, { novaPort: nova.port, resolver });

  const r = await viaSocket(socketPath, {
    path: '/openstack/latest/meta_data.json',
    headers: { 'x-neutron-network-id': port.networkId, 'x-forwarded-for': port.ip },
  });
  assert.equal(r.status, 503);
  assert.equal(nova.seen.length, 0);

  await new Promise((resolve) => setTimeout(resolve, 20));
  const lines = logs.lines().filter((l) => l.msg === 'request');
  assert.equal(lines.length, 1, logs.text());
  const line = lines[0]!;
  assert.equal(line.status, 503, 'the status the instance got');
  assert.equal(line.code, 'MDA_ERR_RESOLVER_UNAVAILABLE');
  assert.equal(line.upstream, 'keystone');
  assert.equal(line.upstreamStatus, 401, "Keystone's answer, under its own name");
  assert.equal(line.level, 'error');
  assert.doesNotMatch(logs.text(), /not-the-password/);
});
