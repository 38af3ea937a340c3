/*
 * HTTPS with a required client certificate, as the agent's nova_metadata_protocol=https, auth_ca_cert and
 * nova_client_cert options need. A throwaway CA, server and client certificate are made with openssl.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AS_A, startNova } from './helpers.js';

interface Pki {
  readonly ca: Buffer;
  readonly serverCert: Buffer;
  readonly serverKey: Buffer;
  readonly clientCert: Buffer;
  readonly clientKey: Buffer;
  readonly strangerCert: Buffer;
  readonly strangerKey: Buffer;
}

function makePki(dir: string): Pki {
  const ssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 20_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) =>
    ssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  const leaf = (name: string, caName: string, ext: string) => {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${caName}.pem`,
      '-CAkey',
      `${caName}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  ca('test-ca');
  ca('other-ca');
  leaf('server', 'test-ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'test-ca', 'extendedKeyUsage=clientAuth\n');
  leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  const read = (f: string) => readFileSync(join(dir, f));
  return {
    ca: read('test-ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCert: read('client.pem'),
    clientKey: read('client.key'),
    strangerCert: read('stranger.pem'),
    strangerKey: read('stranger.key'),
  };
}

function get(port: number, options: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/openstack/latest/meta_data.json',
        headers: AS_A,
        agent: false,
        timeout: 5000,
        ...options,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('https with a required client certificate', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nova-dev-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki(dir);
  const { port, nova } = await startNova(t, {
    tlsCert: pki.serverCert,
    tlsKey: pki.serverKey,
    tlsClientCa: pki.ca,
  });
  assert.equal(nova.url, `https://127.0.0.1:${port}`);

  const ok = await get(port, { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
  assert.equal(ok.status, 200);
  assert.match(ok.body, /^\{"uuid": "6f4c1a52/);

  await assert.rejects(get(port, { ca: pki.ca }), 'no client certificate is refused');
  await assert.rejects(
    get(port, { ca: pki.ca, cert: pki.strangerCert, key: pki.strangerKey }),
    'unknown CA refused',
  );
  await assert.rejects(get(port, { cert: pki.clientCert, key: pki.clientKey }), 'client verifies the server');
});

test('https without client certificates when no client CA is given', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nova-dev-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki(dir);
  const { port } = await startNova(t, { tlsCert: pki.serverCert, tlsKey: pki.serverKey });
  assert.equal((await get(port, { ca: pki.ca })).status, 200);
});
