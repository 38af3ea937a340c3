/*
 * The configuration -> serving settings mapping (servingSettings), which both the proxy CLI and the
 * daemon CLI use: every option of a realistic file arrives, in the units the runtime takes, and the
 * defaults are DEFAULT_LIMITS.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '@nmp/common';
import { proxyOptions } from '../src/options.js';
import { DEFAULT_LIMITS } from '../src/proxy.js';
import { describeServing, servingSettings } from '../src/serving-settings.js';

function load(ini: string, flags: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'nmp-serving-'));
  try {
    const file = join(dir, 'proxy.ini');
    writeFileSync(file, ini);
    return loadConfig(proxyOptions, { flags: { 'config-file': file, ...flags }, env: {} }).config;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the defaults are DEFAULT_LIMITS, no rate limit, no SSRF defence, no metrics', () => {
  const s = servingSettings(loadConfig(proxyOptions, { flags: {}, env: {} }).config);
  assert.deepEqual(s.limits, DEFAULT_LIMITS);
  assert.equal(s.rateLimit, undefined);
  assert.equal(s.ssrf, undefined);
  assert.equal(s.adminSocket, '');
  assert.deepEqual(s.warnings, []);
  assert.equal(s.limits.maxConnectionsPerSource, 100);
  assert.equal(s.limits.firstByteTimeoutMs, 5000);
});

test('every serving option of a file arrives, in milliseconds where the runtime takes them', () => {
  const config = load(
    [
      '[DEFAULT]',
      'max_connections = 500',
      'max_connections_per_source = 20',
      'timeout_first_byte = 1.5',
      'max_header_size = 8192',
      'max_body_size = 1024',
      'backlog = 64',
      'agent_connections = 8',
      'admin_socket = /run/nmp/p.admin',
      '[metadata_haproxy]',
      'timeout_http_request = 11',
      'timeout_http_keep_alive = 12',
      'timeout_server = 13',
      'timeout_client = 14',
      'timeout_connect = 15',
      '[metadata_rate_limiting]',
      'rate_limit_enabled = true',
      'ip_versions = 6',
      'base_window_duration = 20',
      'base_query_rate_limit = 5',
      'burst_window_duration = 2',
      'burst_query_rate_limit = 3',
      '[metadata_ssrf]',
      'required_header = Metadata-Flavor: OpenStack',
      'refuse_forwarded_for = true',
      'path_deny = /openstack/latest/password',
      'token_mode = optional',
      'token_max_ttl = 600',
      '',
    ].join('\n'),
  );
  const s = servingSettings(config);
  assert.deepEqual(s.limits, {
    requestTimeoutMs: 11_000,
    keepAliveTimeoutMs: 12_000,
    upstreamTimeoutMs: 13_000,
    clientTimeoutMs: 14_000,
    connectTimeoutMs: 15_000,
    firstByteTimeoutMs: 1_500,
    maxConnections: 500,
    maxConnectionsPerSource: 20,
    maxHeaderSize: 8192,
    maxBodySize: 1024,
    backlog: 64,
    agentConnections: 8,
  });
  assert.deepEqual(s.rateLimit, {
    baseWindowMs: 20_000,
    baseLimit: 5,
    burstWindowMs: 2_000,
    burstLimit: 3,
    ipv4: false,
    ipv6: true,
  });
  assert.deepEqual(s.ssrf, {
    tokenMode: 'optional',
    tokenMaxTtl: 600,
    tokenKeyFile: '',
    requiredHeader: { name: 'metadata-flavor', value: 'OpenStack' },
    refuseForwardedFor: true,
    pathAllow: [],
    pathDeny: ['/openstack/latest/password'],
  });
  assert.equal(s.adminSocket, '/run/nmp/p.admin');
  assert.ok(Object.isFrozen(s) && Object.isFrozen(s.limits));
  assert.deepEqual(describeServing(s), {
    limits: {
      maxConnections: 500,
      maxConnectionsPerSource: 20,
      firstByteTimeoutMs: 1500,
      clientTimeoutMs: 14_000,
    },
    rateLimit: { ipVersions: ['6'], base: '5/20s', burst: '3/2s' },
    ssrf: { tokenMode: 'optional', requiredHeader: 'metadata-flavor', refuseForwardedFor: true },
  });
});

test('flags win over the file; the per-source cap never exceeds the proxy cap', () => {
  const s = servingSettings(
    load('[DEFAULT]\nmax_connections_per_source = 50\n', {
      'max-connections': '10',
      'timeout-first-byte': '0',
    }),
  );
  assert.equal(s.limits.maxConnections, 10);
  assert.equal(s.limits.maxConnectionsPerSource, 10);
  assert.equal(s.limits.firstByteTimeoutMs, 0);
});

test('rate limiting with no family is a warning; a bad family is refused', () => {
  const s = servingSettings(load('[metadata_rate_limiting]\nrate_limit_enabled = true\nip_versions =\n'));
  assert.equal(s.rateLimit, undefined);
  assert.deepEqual(s.warnings, [
    'rate_limit_enabled is set but ip_versions is empty: no source is rate limited',
  ]);
  assert.throws(
    () => servingSettings(load('[metadata_rate_limiting]\nrate_limit_enabled = true\nip_versions = 5\n')),
    (e: unknown) => e instanceof ConfigError && /ip_versions: '5' is not 4 or 6/.test(e.message),
  );
});
