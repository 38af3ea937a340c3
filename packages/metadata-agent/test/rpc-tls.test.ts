/*
 * TLS to the broker, against a real RabbitMQ with a TLS listener and certificates made here by openssl:
 * ?ssl=1 in transport_url with [oslo_messaging_rabbit] ssl_ca_file connects and serves lookups; the chain
 * is always verified (no ssl_ca_file: the private CA is refused, one clear line with a TLS hint); the host
 * name only with ssl_enforce_hostname_verification (the certificate here names another host); a broker
 * that requires client certificates accepts ssl_cert_file + ssl_key_file and refuses a client without; and
 * rabbit_login_method = EXTERNAL logs in with the certificate alone (no password in transport_url).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { loadConfig } from '@nmp/common';
import {
  captureLogs,
  requireNeutronPython,
  requireRabbit,
  startNeutronRpcServer,
  startRabbitNode,
  waitUntil,
} from '@nmp/testkit';
import { AGENT_COMPAT, agentSchema } from '../src/options.js';
import { createRpcResolver } from '../src/rpc/create.js';
import { tempDir } from './helpers.js';
import { LAB_PORTS, NET_A, RPC_PASSWORD, RPC_USER, VM_A } from './rpc-fixture.js';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A CA, a server certificate for `serverName` only (not 127.0.0.1), and a client certificate. */
function makeCerts(dir: string, serverName: string) {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=nmp test CA',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  writeFileSync(
    join(dir, 'server.ext'),
    `subjectAltName = DNS:${serverName}\nextendedKeyUsage = serverAuth\n`,
  );
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${serverName}`,
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
    ],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'server.ext',
      '-out',
      'server.pem',
    ],
    dir,
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage = clientAuth\n');
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=nmp-agent',
      '-keyout',
      'client.key',
      '-out',
      'client.csr',
    ],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'client.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'client.ext',
      '-out',
      'client.pem',
    ],
    dir,
  );
  return {
    ca: join(dir, 'ca.pem'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  };
}

function build(t: TestContext, url: string, lines: string[]) {
  const { logger, lines: logLines } = captureLogs();
  const dir = tempDir(t);
  const file = join(dir, 'agent.conf');
  writeFileSync(file, `${lines.join('\n')}\n`);
  const cfg = loadConfig(agentSchema, {
    flags: { 'config-file': [file] },
    env: { NMP_TRANSPORT_URL: url },
    compat: AGENT_COMPAT,
  }).config;
  const parts = createRpcResolver(
    {
      config: cfg,
      routerCacheTtlMs: 1000,
      facts: { version: 't', socketPath: '', novaHost: '', novaPort: 0 },
    },
    logger,
  );
  parts.broker.start();
  t.after(() => parts.resolver.close());
  return { parts, logLines };
}

test('TLS to RabbitMQ: ?ssl=1 and ssl_ca_file; chain always verified; host name on request; client certificates', async (t) => {
  if (!requireRabbit(t) || !requireNeutronPython(t)) return;
  const certs = makeCerts(tempDir(t), 'rabbit.example.invalid');
  const rabbit = await startRabbitNode(t, {
    tls: { ca: certs.ca, cert: certs.cert, key: certs.key, requireClientCert: true },
    // EXTERNAL: the broker takes the user from the client certificate's CN (nmp-agent).
    plugins: ['rabbitmq_auth_mechanism_ssl'],
    config: [
      'auth_mechanisms.1 = PLAIN',
      'auth_mechanisms.2 = AMQPLAIN',
      'auth_mechanisms.3 = EXTERNAL',
      'ssl_cert_login_from = common_name',
    ],
  });
  await rabbit.addUser(RPC_USER, RPC_PASSWORD);
  // neutron-server on the plain listener; the agent on the TLS one.
  await startNeutronRpcServer(t, { transportUrl: rabbit.url(RPC_USER, RPC_PASSWORD), ports: LAB_PORTS });
  const cred = `${encodeURIComponent(RPC_USER)}:${encodeURIComponent(RPC_PASSWORD)}`;
  const tlsUrl = `rabbit://${cred}@127.0.0.1:${rabbit.tlsPort}/?ssl=1`;
  const clientCert = [
    '[oslo_messaging_rabbit]',
    `ssl_cert_file = ${certs.clientCert}`,
    `ssl_key_file = ${certs.clientKey}`,
  ];

  await t.test('ssl_ca_file + client certificate: connected, lookups work', async (t2) => {
    const { parts } = build(t2, tlsUrl, [...clientCert, `ssl_ca_file = ${certs.ca}`]);
    await waitUntil(() => parts.broker.connected, 20_000, 'a TLS connection');
    assert.equal(parts.broker.stats.host, `127.0.0.1:${rabbit.tlsPort}`);
    assert.equal(
      (await parts.resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip })).instanceId,
      VM_A.uuid,
    );
    assert.match(parts.transport, /\?ssl=1 \(TLS\)$/);
  });

  await t.test('without ssl_ca_file the private CA is refused, with one clear line', async (t2) => {
    const { parts, logLines } = build(t2, tlsUrl, clientCert);
    await waitUntil(() => parts.broker.stats.connectFailures >= 2, 20_000, 'two failed attempts');
    assert.equal(parts.broker.connected, false);
    const lines = logLines().filter((l) => l.code === 'MDA_RPC_CONNECT_FAILED' && l.level === 'error');
    assert.equal(lines.length, 1);
    assert.match(String(lines[0]!.reason), /certificate/i);
    assert.match(String(lines[0]!.hint), /ssl_ca_file/);
  });

  await t.test('the host name is checked only when asked', async (t2) => {
    const { parts, logLines } = build(t2, tlsUrl, [
      ...clientCert,
      `ssl_ca_file = ${certs.ca}`,
      'ssl_enforce_hostname_verification = true',
    ]);
    await waitUntil(() => parts.broker.stats.connectFailures >= 1, 20_000, 'a failed attempt');
    assert.equal(parts.broker.connected, false);
    assert.match(
      String(logLines().find((l) => l.code === 'MDA_RPC_CONNECT_FAILED')?.reason),
      /altnames|does not match|Hostname/i,
    );
  });

  await t.test('rabbit_login_method = EXTERNAL: the certificate is the only credential', async (t2) => {
    const noPassword = `rabbit://127.0.0.1:${rabbit.tlsPort}/?ssl=1`;
    const { parts, logLines } = build(t2, noPassword, [
      ...clientCert,
      `ssl_ca_file = ${certs.ca}`,
      'rabbit_login_method = EXTERNAL',
    ]);
    await waitUntil(() => parts.broker.connected, 20_000, 'an EXTERNAL login').catch((err: Error) => {
      err.message += `\n${JSON.stringify(logLines().filter((l) => l.code === 'MDA_RPC_CONNECT_FAILED'))}`;
      throw err;
    });
    assert.equal(
      (await parts.resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip })).instanceId,
      VM_A.uuid,
    );
    const conns = await rabbit.ctl([
      'list_connections',
      '-q',
      '--no-table-headers',
      'user',
      'auth_mechanism',
      'ssl',
    ]);
    assert.match(conns, /^nmp-agent\tEXTERNAL\ttrue$/m);
  });

  await t.test('a broker that wants a client certificate refuses a client without one', async (t2) => {
    const { parts } = build(t2, tlsUrl, ['[oslo_messaging_rabbit]', `ssl_ca_file = ${certs.ca}`]);
    await waitUntil(() => parts.broker.stats.connectFailures >= 1, 20_000, 'a failed attempt');
    assert.equal(parts.broker.connected, false);
  });
});
