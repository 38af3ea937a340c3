/*
 * bin/ of a release tree: a POSIX sh wrapper per program that finds its own tree (through any symlink,
 * such as /usr/bin/metadata-agent -> /usr/lib/nmp/bin/metadata-agent) and execs the tree's node with the
 * flags every service of ours runs with (SERVICE_NODE_FLAGS) and the program's bundle. exec, so the
 * program keeps the wrapper's pid (systemd's main pid, neutron's pid files). Never a system node.
 *
 * bin/haproxy is the haproxy drop-in (`metadata-hooks haproxy-drop-in enable` diverts /usr/sbin/haproxy
 * and links it here): a config that neutron's DHCP or L3 agent wrote for its metadata proxy is served by
 * our proxy (also the OVN metadata agent's), anything else goes to the real haproxy, which the diversion moved to `<its path>.nmp-real`.
 */
import { SERVICE_NODE_FLAGS } from '@nmp/common';
import type { ProgramSpec } from './layout.js';

// biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template.
const FIND_TREE = ['self=$(readlink -f "$0") || exit 127', 'bin=${self%/*}'];

export function programWrapper(p: ProgramSpec): string {
  return [
    '#!/bin/sh',
    `# ${p.name}: ${p.summary}.`,
    "# Written by nmp's release builder: runs this release's own Node.js runtime, never a system node.",
    ...FIND_TREE,
    `exec "$bin/node" ${SERVICE_NODE_FLAGS.join(' ')} "$bin/../packages/${p.pkg}/dist/src/cli.js" "$@"`,
    '',
  ].join('\n');
}

/** Where neutron's agents write the haproxy configs of their metadata proxies (reference.md §2.2). */
export const NEUTRON_METADATA_CONFIG_DIRS = ['ns-metadata-proxy', 'ovn-metadata-proxy'] as const;

export function haproxyWrapper(): string {
  return [
    '#!/bin/sh',
    '# haproxy drop-in of nmp (metadata-hooks haproxy-drop-in): neutron runs',
    '#   ip netns exec <namespace> haproxy -f $state_path/ns-metadata-proxy/<id>.conf',
    "# (DHCP and L3 agents; the OVN metadata agent's are under ovn-metadata-proxy/) for a network's or",
    "# router's metadata proxy; such a config is served by nmp's ns-metadata-proxy. Every",
    '# other use of haproxy (haproxy.service, other configs, -v) runs the real haproxy, which the diversion',
    '# moved beside this link as <path>.nmp-real.',
    'real="$0.nmp-real"',
    'cfg=',
    'prev=',
    'for a in "$@"; do',
    '  [ "$prev" = -f ] && cfg=$a',
    '  prev=$a',
    'done',
    'case "$cfg" in',
    `  ${NEUTRON_METADATA_CONFIG_DIRS.map((d) => `*/${d}/*.conf`).join('|')})`,
    ...FIND_TREE.map((l) => `    ${l}`),
    '    exec "$bin/metadata-hooks" haproxy-compat "$@"',
    '    ;;',
    'esac',
    'if [ ! -x "$real" ]; then',
    '  echo "haproxy (nmp drop-in): $real is missing: not a neutron metadata proxy config, and no real haproxy to run" >&2',
    '  exit 1',
    'fi',
    'exec "$real" "$@"',
    '',
  ].join('\n');
}
