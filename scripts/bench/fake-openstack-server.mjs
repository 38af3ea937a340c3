// The fake Keystone + Neutron of @nmp/openstack-fakes in a process of its own (so that it does not share a
// core's event loop with the storm's clients), driven over IPC: {ports file, latency} in, its URL out, and
// its counters on request. Started by boot-storm.mjs with child_process.fork.
import { readFileSync } from 'node:fs';
import { createFakeOpenStack, FAKE_DEFAULTS } from '@nmp/openstack-fakes';

const [portsFile, latencyMs] = process.argv.slice(2);
const ports = JSON.parse(readFileSync(portsFile, 'utf8')).ports;
const fake = createFakeOpenStack({
  ports,
  latencyMs: Number(latencyMs ?? 2),
  users: [{ name: FAKE_DEFAULTS.username, password: FAKE_DEFAULTS.password, roles: ['admin'] }],
});
const url = await fake.listen();
process.send({ type: 'ready', url, authUrl: fake.authUrl, ports: fake.ports.length });
process.on('message', (m) => {
  if (m?.type === 'counts') {
    process.send({ type: 'counts', counts: { ...fake.counts }, portQueries: [...fake.portQueries] });
  } else if (m?.type === 'reset') {
    fake.resetCounts();
    process.send({ type: 'reset' });
  } else if (m?.type === 'stop') {
    fake.close().then(() => process.exit(0));
  }
});
process.on('disconnect', () => fake.close().then(() => process.exit(0)));
