/*
 * agentSettings(): the settings built once from the loaded configuration. A file the configuration names
 * that cannot be read is a ConfigError naming the option (not a bare ENOENT), at start (exit status 2, one
 * line) and on a reload (MDA_CONFIG_RELOAD_FAILED, the running configuration kept); every seconds option
 * arrives in milliseconds; the checks that span options fail at once; the tree is frozen all the way down.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '@nmp/common';
import { AGENT_COMPAT, agentSchema } from '../src/options.js';
import { ConfigReloader } from '../src/reload.js';
import { agentSettings } from '../src/settings.js';
import { InstanceSigner } from '../src/signer.js';
import { captureLogs, PORTS, tempDir } from './helpers.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const ME = { uid: 1000, gid: 1000, user: 'neutron', group: '1000' };
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function config(flags: Record<string, unknown>, env: Record<string, string> = {}) {
  return loadConfig(agentSchema, { flags, env, compat: AGENT_COMPAT }).config;
}

const INVENTORY = { resolver: 'inventory', 'inventory-file': '/nonexistent/ports.json' };

function configError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `a ConfigError, not ${String(err)}`);
    assert.match(err.message, message);
    // The configuration error's own code (the table's), not the file system's errno.
    assert.equal((err as NodeJS.ErrnoException).code, 'NMP_ERR_CONFIG');
    return true;
  });
}

test('a missing Nova CA or client certificate is a ConfigError naming the option, not ENOENT', (t) => {
  const dir = tempDir(t);
  const ca = join(dir, 'ca.pem');
  writeFileSync(ca, PEM);
  const https = { ...INVENTORY, 'nova-metadata-protocol': 'https' };
  configError(
    () => agentSettings(config({ ...https, 'auth-ca-cert': join(dir, 'missing-ca.pem') }), ME),
    new RegExp(`^auth_ca_cert ${dir}/missing-ca\\.pem: cannot read: ENOENT$`),
  );
  configError(
    () =>
      agentSettings(
        config({ ...https, 'nova-client-cert': '/x', 'nova-client-priv-key': join(dir, 'key.pem') }),
        ME,
      ),
    /^nova_client_cert \/x: cannot read: ENOENT$/,
  );
  configError(
    () =>
      agentSettings(
        config({ ...https, 'nova-client-cert': ca, 'nova-client-priv-key': '/nonexistent/k' }),
        ME,
      ),
    /^nova_client_priv_key \/nonexistent\/k: cannot read: ENOENT$/,
  );
  // Read once, here: the client gets the contents.
  const s = agentSettings(
    config({ ...https, 'auth-ca-cert': ca, 'nova-client-cert': ca, 'nova-client-priv-key': ca }),
    ME,
  );
  assert.equal(s.nova.ca, PEM);
  assert.equal(s.nova.clientCert, PEM);
  assert.equal(s.nova.clientKey, PEM);
  // As before: over http nothing is read, and one half of a client certificate is not used (as neutron).
  const http = agentSettings(config({ ...INVENTORY, 'auth-ca-cert': '/nonexistent/ca.pem' }), ME);
  assert.equal(http.nova.ca, undefined);
  const half = agentSettings(config({ ...https, 'nova-client-cert': '/nonexistent/c.pem' }), ME);
  assert.equal(half.nova.clientCert, undefined);
});

test('[neutron] cafile and the broker TLS files: ConfigErrors naming the option', () => {
  const neutron = {
    'neutron-auth-url': 'http://keystone:5000/v3',
    'neutron-username': 'nmp',
    'neutron-user-domain-name': 'Default',
    'neutron-project-name': 'service',
    'neutron-project-domain-name': 'Default',
    'neutron-cafile': '/nonexistent/neutron-ca.pem',
  };
  configError(
    () => agentSettings(config(neutron, { NMP_NEUTRON__PASSWORD: 'pw' }), ME),
    /^\[neutron\] cafile \/nonexistent\/neutron-ca\.pem: cannot read: ENOENT$/,
  );
  configError(
    () =>
      agentSettings(
        config({}, { NMP_TRANSPORT_URL: 'rabbit://u:p@h/?ssl=1&ssl_ca_file=/nonexistent/r.pem' }),
        ME,
      ),
    /^\[oslo_messaging_rabbit\] ssl_ca_file \/nonexistent\/r\.pem: cannot read: ENOENT$/,
  );
});

test('every seconds option arrives in milliseconds', () => {
  const rpc = agentSettings(
    config(
      {
        'nova-metadata-timeout': 2.5,
        'readiness-window': 7,
        'port-cache-ttl': 1.5,
        'port-cache-max-age': 45.5,
        'negative-cache-ttl': 0.25,
        'serve-stale-on-outage': true,
        'stale-max-age': 90,
        'router-cache-ttl': 12,
        'lookup-outage-grace': 0.4,
        'rpc-lookup-timeout': 3.5,
        'rpc-connect-timeout': 2,
        'rabbit-retry-interval': 0.5,
        'rabbit-retry-backoff': 1.5,
        'rabbit-interval-max': 20,
        'rabbit-transient-queues-ttl': 60,
        'report-interval': 15,
        host: 'net-1',
      },
      { NMP_TRANSPORT_URL: 'rabbit://u:p@h/' },
    ),
    ME,
  );
  assert.equal(rpc.nova.timeoutMs, 2500);
  assert.equal(rpc.readiness.windowMs, 7000);
  assert.equal(rpc.resolver.kind, 'rpc');
  if (rpc.resolver.kind !== 'rpc') return;
  assert.deepEqual(rpc.resolver.cache, {
    ttlMs: 1500,
    maxAgeMs: 45_500,
    negativeTtlMs: 250,
    maxEntries: 10000,
    stale: { maxAgeMs: 90_000, maxEntries: 10000 },
  });
  const r = rpc.resolver.rpc;
  assert.deepEqual(r.lookup, {
    timeoutMs: 3500,
    routerCacheTtlMs: 12_000,
    routerCacheSize: 4096,
    routerRecheckAfterMs: 1000,
    outageGraceMs: 400,
  });
  assert.equal(r.broker.connectTimeoutMs, 2000);
  assert.equal(r.broker.retryIntervalMs, 500);
  assert.equal(r.broker.retryBackoffMs, 1500);
  assert.equal(r.broker.retryMaxMs, 20_000);
  assert.equal(r.broker.replyQueueExpiresMs, 60_000);
  assert.deepEqual(r.reports, {
    intervalMs: 15_000,
    host: 'net-1',
    binary: 'neutron-metadata-agent',
    logHeartbeats: false,
  });
  assert.equal(r.handOverWaitMs, 7000);

  const rest = agentSettings(
    config(
      {
        'neutron-auth-url': 'http://keystone:5000/v3',
        'neutron-user-id': 'u1',
        'neutron-project-id': 'p1',
        'neutron-timeout': 4.5,
        'neutron-connect-timeout': 1.5,
        'neutron-auth-retry-max-interval': 60,
        'router-cache-ttl': 12,
        'lookup-outage-grace': 0.4,
      },
      { NMP_NEUTRON__PASSWORD: 'pw' },
    ),
    ME,
  );
  assert.equal(rest.resolver.kind, 'neutron');
  if (rest.resolver.kind !== 'neutron') return;
  const n = rest.resolver.neutron;
  assert.equal(n.timeoutMs, 4500);
  assert.equal(n.connectTimeoutMs, 1500);
  assert.equal(n.authRetryMaxMs, 60_000);
  // The resolver-wide router cache and grace: the same numbers as RPC's, from one place.
  assert.equal(n.routerCacheTtlMs, 12_000);
  assert.equal(n.routerCacheSize, 4096);
  assert.equal(n.outageGraceMs, 400);
  assert.deepEqual(rest.resolver.cache, {
    ttlMs: 5000,
    maxAgeMs: 60_000,
    negativeTtlMs: 1000,
    maxEntries: 10000,
  });
  // No reports: undefined, not an interval of 0.
  const quiet = agentSettings(config({ 'report-interval': 0 }, { NMP_TRANSPORT_URL: 'rabbit://h/' }), ME);
  assert.equal(quiet.resolver.kind === 'rpc' && quiet.resolver.rpc.reports, undefined);
});

test('checks across options fail when the settings are built', () => {
  configError(() => agentSettings(config({}), ME), /^no port lookup configured/);
  configError(() => agentSettings(config({ resolver: 'inventory' }), ME), /needs inventory_file/);
  configError(() => agentSettings(config({ resolver: 'rpc' }), ME), /^resolver = rpc needs transport_url/);
  configError(
    () =>
      agentSettings(
        config({ 'rabbit-login-method': 'EXTERNAL' }, { NMP_TRANSPORT_URL: 'rabbit://h/?ssl=1' }),
        ME,
      ),
    /rabbit_login_method = EXTERNAL needs ssl = true and a client certificate/,
  );
  configError(
    () =>
      agentSettings(
        config({ 'rabbit-ssl-cert-file': '/x.pem' }, { NMP_TRANSPORT_URL: 'rabbit://h/?ssl=1' }),
        ME,
      ),
    /ssl_cert_file and ssl_key_file go together/,
  );
  configError(
    () =>
      agentSettings(config({ 'neutron-auth-url': 'http://keystone:5000/v3', 'neutron-username': 'u' }), ME),
    /^\[neutron\] password is required/,
  );
  // The socket mode as neutron deduces it, from the identity given.
  assert.equal(agentSettings(config(INVENTORY), ME).socket.mode, 0o644);
  assert.equal(agentSettings(config({ ...INVENTORY, 'metadata-proxy-user': 'nova' }), ME).socket.mode, 0o664);
  assert.equal(
    agentSettings(config({ ...INVENTORY, 'metadata-proxy-user': 'nova', 'metadata-proxy-group': 'nova' }), ME)
      .socket.mode,
    0o666,
  );
});

test('the transport_url warnings are handed back for the log, not logged or lost', () => {
  const s = agentSettings(config({}, { NMP_TRANSPORT_URL: 'rabbit://u:p@h/?frobnicate=1' }), ME);
  assert.equal(s.warnings.length, 1);
  assert.match(
    s.warnings[0]!.message,
    /query parameter frobnicate is not an \[oslo_messaging_rabbit\] option/,
  );
  assert.deepEqual(s.warnings[0]!.fields, { component: 'rpc', option: 'frobnicate' });
});

test('the settings are one frozen tree, all the way down', (t) => {
  const dir = tempDir(t);
  const ca = join(dir, 'ca.pem');
  writeFileSync(ca, PEM);
  const trees = [
    agentSettings(
      config(
        { 'nova-metadata-protocol': 'https', 'auth-ca-cert': ca },
        { NMP_TRANSPORT_URL: `rabbit://u:p@h1,u:p@h2/?ssl=1&ssl_ca_file=${ca}` },
      ),
      ME,
    ),
    agentSettings(
      config(
        {
          'serve-stale-on-outage': true,
          'neutron-auth-url': 'http://k/v3',
          'neutron-user-id': 'u',
          'neutron-project-id': 'p',
          'neutron-cafile': ca,
        },
        { NMP_NEUTRON__PASSWORD: 'pw' },
      ),
      ME,
    ),
    agentSettings(config({ 'ovn-sb-connection': 'tcp:127.0.0.1:6642' }), ME),
    agentSettings(config(INVENTORY), ME),
  ];
  let objects = 0;
  const walk = (v: unknown, path: string) => {
    if (typeof v !== 'object' || v === null) return;
    assert.ok(!Buffer.isBuffer(v), `${path} is a Buffer (cannot be frozen)`);
    assert.ok(Object.isFrozen(v), `${path} is not frozen`);
    objects++;
    for (const [k, child] of Object.entries(v)) walk(child, `${path}.${k}`);
  };
  for (const s of trees) walk(s, s.resolver.kind);
  assert.ok(objects > 20, `${objects} objects walked`);
  const s = trees[0]!;
  assert.throws(() => {
    (s.nova as { timeoutMs: number }).timeoutMs = 1;
  }, TypeError);
  assert.throws(() => {
    (s.resolver.kind === 'rpc' ? (s.resolver.rpc.url.hosts as unknown[]) : []).push({});
  }, TypeError);
});

test('the CLI reports an unreadable CA like any configuration error: one line, exit status 2', (t) => {
  const dir = tempDir(t);
  const ports = join(dir, 'ports.json');
  writeFileSync(ports, JSON.stringify({ ports: PORTS }));
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      '--resolver',
      'inventory',
      '--inventory-file',
      ports,
      '--metadata-proxy-socket',
      join(dir, 'mp.sock'),
      '--nova-metadata-protocol',
      'https',
      '--auth-ca-cert',
      join(dir, 'no-ca.pem'),
    ],
    { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '' } },
  );
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, `metadata-agent: auth_ca_cert ${dir}/no-ca.pem: cannot read: ENOENT\n`);
  assert.ok(!r.stdout.includes('listening'), r.stdout);
});

test('a reload builds the settings again: an unreadable file fails it, the running configuration stays', async (t) => {
  const dir = tempDir(t);
  const ports = join(dir, 'ports.json');
  writeFileSync(ports, JSON.stringify({ ports: PORTS }));
  const conf = join(dir, 'agent.ini');
  const write = (extra: string) =>
    writeFileSync(
      conf,
      `[DEFAULT]\nresolver = inventory\ninventory_file = ${ports}\nmetadata_proxy_shared_secret = old\n${extra}\n`,
      { mode: 0o600 },
    );
  write('');
  const load = () =>
    loadConfig(agentSchema, { flags: { 'config-file': [conf] }, env: {}, compat: AGENT_COMPAT });
  const initial = load().config;
  const logs = captureLogs();
  const signer = new InstanceSigner(initial.sharedSecret);
  const reloader = new ConfigReloader(load, initial, { signer, logger: logs.logger });
  writeFileSync(
    conf,
    `[DEFAULT]\nresolver = inventory\ninventory_file = ${ports}\nmetadata_proxy_shared_secret = new\nnova_metadata_protocol = https\nauth_ca_cert = ${dir}/gone.pem\n`,
  );
  const outcome = await reloader.reload();
  assert.equal(outcome.ok, false);
  assert.equal(outcome.error, `auth_ca_cert ${dir}/gone.pem: cannot read: ENOENT`);
  assert.equal(reloader.config.sharedSecret, 'old');
  const line = logs.lines().find((l) => l.code === 'MDA_CONFIG_RELOAD_FAILED');
  assert.equal(line?.error, outcome.error);
});
