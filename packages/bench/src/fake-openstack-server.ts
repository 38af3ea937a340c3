// The fake Keystone + Neutron of @nmp/openstack-fakes in a process of its own (so that it does not share a
// core's event loop with the storm's clients), driven over IPC: {ports file, latency} in, its URL out, and
// its counters on request. Started by boot-storm.ts with child_process.fork.
import { readFileSync } from 'node:fs';
import { createFakeOpenStack, FAKE_DEFAULTS, type FakePort } from '@nmp/openstack-fakes';

/** What the parent sends. */
export interface FakeRequest {
  readonly type: 'counts' | 'reset' | 'stop';
}

/** What this process sends back. */
export type FakeMessage =
  | { readonly type: 'ready'; readonly url: string; readonly authUrl: string; readonly ports: number }
  | {
      readonly type: 'counts';
      readonly counts: ReturnType<typeof createFakeOpenStack>['counts'];
      readonly portQueries: readonly string[];
    }
  | { readonly type: 'reset' };

const send = (m: FakeMessage): void => {
  process.send?.(m);
};

function readPorts(file: string): FakePort[] {
  // The ports file boot-storm.ts wrote: {ports: [...]}.
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  const ports =
    typeof parsed === 'object' && parsed !== null ? (parsed as { ports?: unknown }).ports : undefined;
  if (!Array.isArray(ports)) throw new Error(`${file}: no "ports" array`);
  return ports as FakePort[];
}

const [portsFile, latencyMs] = process.argv.slice(2);
if (portsFile === undefined) throw new Error('usage: fake-openstack-server.js PORTS_FILE [LATENCY_MS]');
const fake = createFakeOpenStack({
  ports: readPorts(portsFile),
  latencyMs: Number(latencyMs ?? 2),
  users: [{ name: FAKE_DEFAULTS.username, password: FAKE_DEFAULTS.password, roles: ['admin'] }],
});
const url = await fake.listen();
send({ type: 'ready', url, authUrl: fake.authUrl, ports: fake.ports.length });
process.on('message', (m: unknown) => {
  const type = typeof m === 'object' && m !== null ? (m as { type?: unknown }).type : undefined;
  if (type === 'counts') {
    send({ type: 'counts', counts: { ...fake.counts }, portQueries: [...fake.portQueries] });
  } else if (type === 'reset') {
    fake.resetCounts();
    send({ type: 'reset' });
  } else if (type === 'stop') {
    void fake.close().then(() => process.exit(0));
  }
});
process.on('disconnect', () => void fake.close().then(() => process.exit(0)));
