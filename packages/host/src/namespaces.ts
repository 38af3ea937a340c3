/*
 * Named network namespaces as `ip netns` sees them (the files under /run/netns that neutron's agents, the
 * hooks and the provisioner create).
 */
import { run } from './command.js';

/** Named namespaces (`ip netns list`; its "(id: N)" suffixes dropped). */
export async function listNamespaces(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { allowFailure: true });
  return r.stdout
    .split('\n')
    .map((l) => l.split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** Does namespace `ns` exist? */
export async function namespaceExists(ns: string): Promise<boolean> {
  return (await listNamespaces()).includes(ns);
}
