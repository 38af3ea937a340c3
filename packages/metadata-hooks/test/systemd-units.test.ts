/* The checked-in systemd units are what render-units produces (fails on drift), and say what they must. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@nmp/testkit';
import { DEFAULT_UNIT_SETTINGS, renderUnits } from '../src/systemd-units.js';

const repoSystemd = fileURLToPath(new URL('../../../../systemd/', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url)).replace(/\/$/, '');

test('systemd/ matches render-units (run `metadata-hooks render-units --output-dir systemd` after changes)', () => {
  for (const [name, text] of renderUnits()) {
    assert.equal(readFileSync(`${repoSystemd}${name}`, 'utf8'), text, `${name} drifted`);
  }
});

test('agent unit: restart on failure, no capabilities, socket directory writable', () => {
  const u = renderUnits().get('nmp-metadata-agent.service')!;
  for (const line of [
    'Restart=on-failure',
    'CapabilityBoundingSet=',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ReadWritePaths=/var/lib/neutron',
    'ExecStart=/usr/bin/node --max-semi-space-size=2 --heap-growing-percent=50 --v8-pool-size=1 /opt/nmp/packages/metadata-agent/dist/src/cli.js --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/metadata_agent.ini',
  ])
    assert.match(u, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.doesNotMatch(u, /^MemoryDenyWriteExecute/m);
});

test('proxy template: joins /run/netns/%i, may bind port 80 and nothing more', () => {
  const u = renderUnits({
    node: '/usr/local/bin/node',
    installDir: '/srv/nmp',
    user: 'nmp',
    group: 'nmp',
    configDir: '/etc/neutron',
    statePath: '/var/lib/neutron',
  }).get('nmp-ns-metadata-proxy@.service')!;
  assert.match(u, /^NetworkNamespacePath=\/run\/netns\/%i$/m);
  assert.match(u, /^ConditionPathExists=\/run\/netns\/%i$/m);
  assert.match(u, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
  assert.match(u, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
  assert.match(u, /^User=nmp$/m);
  assert.match(
    u,
    /^ExecStart=\/usr\/local\/bin\/node --max-semi-space-size=2 --heap-growing-percent=50 --v8-pool-size=1 \/srv\/nmp\/packages\/ns-metadata-proxy\/dist\/src\/cli\.js --config-file \/etc\/nmp\/ns-metadata-proxy\/%i\.ini$/m,
  );
  assert.doesNotMatch(u, /^PrivateNetwork/m);
});

test('daemon unit: root supervisor with only the capabilities to enter namespaces and start the worker', () => {
  const u = renderUnits().get('nmp-metadata-proxy-daemon.service')!;
  assert.match(
    u,
    /^ExecStart=\/usr\/bin\/node --max-semi-space-size=2 --heap-growing-percent=50 --v8-pool-size=1 \/opt\/nmp\/packages\/metadata-proxy-daemon\/dist\/src\/cli\.js --config-file \/etc\/nmp\/metadata-proxy-daemon\.ini$/m,
  );
  assert.match(
    u,
    /^CapabilityBoundingSet=CAP_SYS_ADMIN CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_KILL$/m,
  );
  assert.match(u, /^RestrictNamespaces=net$/m);
  assert.match(u, /^SystemCallFilter=@system-service setns$/m);
  assert.match(u, /^ReadWritePaths=\/var\/lib\/neutron$/m);
  assert.match(u, /^KillMode=mixed$/m);
  assert.doesNotMatch(u, /^User=/m, 'the supervisor must stay root; the worker drops to metadata_proxy_user');
  assert.doesNotMatch(u, /^NetworkNamespacePath/m);
});

test('OVN provisioner unit: root with the namespace and network capabilities, no mount sandbox', () => {
  const u = renderUnits().get('nmp-ovn-metadata-provisioner.service')!;
  assert.match(
    u,
    /^CapabilityBoundingSet=CAP_SYS_ADMIN CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_KILL$/m,
  );
  assert.match(u, /^KillMode=process$/m, 'proxy processes outlive a restart');
  assert.match(
    u,
    /^ExecStart=.*ovn-provisioner\/dist\/src\/cli\.js --config-file \/etc\/neutron\/neutron\.conf --config-file \/etc\/neutron\/neutron_ovn_metadata_agent\.ini$/m,
  );
  // A private mount namespace would hide the namespaces it creates (bind mounts under /run/netns).
  for (const forbidden of [
    'ProtectSystem',
    'PrivateTmp',
    'ProtectHome',
    'PrivateDevices',
    'PrivateMounts',
    'User',
  ])
    assert.doesNotMatch(u, new RegExp(`^${forbidden}=`, 'm'));
});

test('agent socket unit: the path, the name the agent looks for, the owner of the proxies; the service requires it', () => {
  const units = renderUnits();
  const sock = units.get('nmp-metadata-agent.socket')!;
  for (const line of [
    'ListenStream=/var/lib/neutron/metadata_proxy',
    'FileDescriptorName=metadata',
    'SocketUser=neutron',
    'SocketGroup=neutron',
    'Backlog=4096',
    'RemoveOnStop=yes',
    'WantedBy=sockets.target',
  ])
    assert.match(sock, new RegExp(`^${line}$`, 'm'), line);
  const svc = units.get('nmp-metadata-agent.service')!;
  assert.match(svc, /^Requires=nmp-metadata-agent\.socket$/m);
  assert.match(svc, /^After=.*nmp-metadata-agent\.socket/m);
  assert.match(svc, /^Also=nmp-metadata-agent\.socket$/m);
});

test('proxy socket template: bound inside /run/netns/%i by systemd, free bind, named for the proxy', () => {
  const units = renderUnits();
  const sock = units.get('nmp-ns-metadata-proxy@.socket')!;
  for (const line of [
    'NetworkNamespacePath=/run/netns/%i',
    'ConditionPathExists=/run/netns/%i',
    'ListenStream=169.254.169.254:80',
    'FreeBind=yes',
    'BindIPv6Only=both',
    'FileDescriptorName=listen',
  ])
    assert.match(sock, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), line);
  const svc = units.get('nmp-ns-metadata-proxy@.service')!;
  assert.match(svc, /^Wants=nmp-ns-metadata-proxy@%i\.socket$/m);
  assert.match(svc, /^After=.*nmp-ns-metadata-proxy@%i\.socket/m);
});

test('daemon unit: notify (READY, MAINPID after a hand-over), reload = hand-over', () => {
  const u = renderUnits().get('nmp-metadata-proxy-daemon.service')!;
  assert.match(u, /^Type=notify$/m);
  assert.match(u, /^NotifyAccess=all$/m);
  assert.match(u, /^ExecReload=\/bin\/kill -USR2 \$MAINPID$/m);
});

test('systemd-analyze verify accepts every generated unit (and a router drop-in for the socket template)', (t) => {
  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (analyze.status !== 0) {
    if (process.getuid?.() === 0)
      throw new Error(
        'systemd-analyze is missing (apt-get install systemd): CI runs as root and must run this',
      );
    t.skip('systemd-analyze is not installed');
    return;
  }
  const dir = tempDir(t, 'nmp-units-');
  // The paths must exist for verify: this node and this checkout.
  const units = renderUnits({ ...DEFAULT_UNIT_SETTINGS, node: process.execPath, installDir: repoRoot });
  const files: string[] = [];
  for (const [name, text] of units) {
    // A template is verified through an instance of it, as systemd loads it.
    const file = join(dir, name.replace('@.', '@qdhcp-0a1b2c3d.'));
    writeFileSync(file, text);
    files.push(file);
  }
  const dropIn = join(dir, 'nmp-ns-metadata-proxy@qdhcp-0a1b2c3d.socket.d');
  mkdirSync(dropIn);
  writeFileSync(
    join(dropIn, 'listen.conf'),
    '[Socket]\nListenStream=\nListenStream=[::]:9697\nListenStream=[fe80::a9fe:a9fe]:80%%7\n',
  );
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, `systemd-analyze verify failed:\n${r.stdout}${r.stderr}`);
  // Warnings (an unknown key, an address it cannot parse) do not change the status: none may appear.
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'systemd-analyze had something to say');
});

test('release layout: every unit starts the release tree bin/ program (its own node and flags), man page as docs', () => {
  const units = renderUnits({
    node: '/usr/bin/node',
    installDir: '/usr/lib/nmp',
    layout: 'release',
    user: 'neutron',
    group: 'neutron',
    configDir: '/etc/neutron',
    statePath: '/var/lib/neutron',
  });
  const programs: Record<string, string> = {
    'nmp-metadata-agent.service': 'metadata-agent',
    'nmp-ns-metadata-proxy@.service': 'ns-metadata-proxy',
    'nmp-metadata-proxy-daemon.service': 'metadata-proxy-daemon',
    'nmp-ovn-metadata-provisioner.service': 'ovn-metadata-provisioner',
  };
  for (const [name, program] of Object.entries(programs)) {
    const u = units.get(name)!;
    assert.match(u, new RegExp(`^ExecStart=/usr/lib/nmp/bin/${program} --config-file `, 'm'), name);
    assert.match(u, new RegExp(`^Documentation=man:${program}\\(8\\)$`, 'm'), name);
    assert.doesNotMatch(u, /\/usr\/bin\/node|dist\/src|\/opt\/nmp/, name);
  }
  for (const [name, program] of Object.entries({
    'nmp-metadata-agent.socket': 'metadata-agent',
    'nmp-ns-metadata-proxy@.socket': 'ns-metadata-proxy',
  })) {
    const u = units.get(name)!;
    assert.match(u, new RegExp(`^Documentation=man:${program}\\(8\\)$`, 'm'), name);
    assert.doesNotMatch(u, /\/opt\/nmp/, name);
  }
  assert.match(
    units.get('nmp-metadata-agent.service')!,
    /^EnvironmentFile=-\/etc\/nmp\/metadata-agent\.env$/m,
  );
});
