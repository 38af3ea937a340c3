/*
 * neutron's neutron_ovn_metadata_agent.ini, unchanged, read by both programs: the agent picks the OVN
 * resolver from it (three TLS remotes, one of them IPv6), the provisioner its Southbound, local database and
 * proxy settings; neither warns about any line (what either does not use is accepted as known-ignored), and
 * the shared secret stays the agent's: the provisioner does not even read it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@nmp/common';
import { AGENT_COMPAT, agentSchema, chooseResolver } from '@nmp/metadata-agent';
import { probeIntervalMs, southboundTls } from '@nmp/ovn';
import { parseRemotes } from '@nmp/ovsdb';
import { PROVISIONER_COMPAT, provisionerSchema } from '../src/options.js';

const INI = fileURLToPath(new URL('../../test/fixtures/neutron_ovn_metadata_agent.ini', import.meta.url));

test("the agent reads neutron's OVN metadata agent file unchanged", () => {
  const loaded = loadConfig(agentSchema, { flags: { 'config-file': [INI] }, env: {}, compat: AGENT_COMPAT });
  assert.deepEqual(loaded.warnings, []);
  const c = loaded.config;
  assert.equal(chooseResolver(c).kind, 'ovn');
  assert.deepEqual(
    parseRemotes(c.ovnSbConnection).map((r) => r.text),
    ['ssl:192.0.2.1:6642', 'ssl:192.0.2.2:6642', 'ssl:[2001:db8::3]:6642'],
  );
  assert.deepEqual(southboundTls(c), {
    privateKey: '/etc/neutron/ovn/sb-key.pem',
    certificate: '/etc/neutron/ovn/sb-cert.pem',
    caCert: '/etc/neutron/ovn/sb-ca.pem',
  });
  assert.equal(probeIntervalMs(c), 60000);
  assert.equal(c.ovsConnection, 'tcp:127.0.0.1:6640');
  assert.equal(c.sharedSecret, 's3cr3t-from-the-ini');
  const ignored = loaded.ignored.join('\n');
  for (const k of [
    'ovsdb_retry_max_interval',
    'ovsdb_log_level',
    'ovn_metadata_enabled',
    'metadata_workers',
    'root_helper',
  ])
    assert.match(ignored, new RegExp(k), k);
});

test('the provisioner reads the same file, without warnings and without the secret', () => {
  const loaded = loadConfig(provisionerSchema, {
    flags: { 'config-file': [INI] },
    env: {},
    compat: PROVISIONER_COMPAT,
  });
  assert.deepEqual(loaded.warnings, []);
  const c = loaded.config;
  assert.equal(c.ovnSbConnection.split(',').length, 3);
  assert.equal(c.ovsConnection, 'tcp:127.0.0.1:6640');
  assert.equal(c.proxyUser, 'neutron');
  assert.equal(c.namespacePrefix, 'ovnmeta-');
  assert.equal(c.proxyMode, 'daemon');
  assert.equal(c.daemonControlSocket, '/var/lib/neutron/nmp-metadata-proxy-daemon/control.sock');
  assert.equal(c.externalPids, '/var/lib/neutron/external/pids');
  assert.ok(!('sharedSecret' in c));
  assert.match(loaded.ignored.join('\n'), /metadata_proxy_shared_secret/);
});
