/*
 * Nova's identity checks (reference.md §7.1, §12.1, §12.3): order of the 400s, signature (403, exact bytes,
 * no expected signature in the log), unknown instance and project mismatch (404), the X-Metadata-Provider
 * flow, and service_metadata_proxy=false (identity by peer address, headers ignored).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, signInstanceId } from '@nmp/common';
import {
  A,
  AS_A,
  B,
  C,
  C_PROJECT,
  identity,
  NOT_FOUND_HTML,
  PROJECT,
  request,
  SECRET,
  startNova,
  TEXT_HTML,
  TEXT_PLAIN,
} from './helpers.js';

const FORBIDDEN_HTML =
  '<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 Forbidden</h1>\n  Invalid proxy request signature.<br /><br />\n\n\n\n </body>\n</html>';
const FORBIDDEN_PLAIN = '403 Forbidden\n\nInvalid proxy request signature.\n\n   ';

function without(headers: Record<string, string>, ...names: string[]): Record<string, string> {
  const out = { ...headers };
  for (const n of names) delete out[n];
  return out;
}

test('missing identity headers: 400, checked in Nova order', async (t) => {
  const { port } = await startNova(t);
  const cases: Array<[Record<string, string>, string]> = [
    [{ accept: '*/*' }, 'X-Instance-ID header is missing from request.'],
    [without(AS_A, 'x-instance-id'), 'X-Instance-ID header is missing from request.'],
    [without(AS_A, 'x-instance-id-signature'), 'X-Instance-ID-Signature header is missing from request.'],
    [without(AS_A, 'x-tenant-id'), 'X-Tenant-ID header is missing from request.'],
    // The tenant check comes before the signature check.
    [
      { ...without(AS_A, 'x-tenant-id'), 'x-instance-id-signature': 'bad' },
      'X-Tenant-ID header is missing from request.',
    ],
    [
      without(AS_A, 'x-instance-id-signature', 'x-tenant-id'),
      'X-Instance-ID-Signature header is missing from request.',
    ],
  ];
  for (const [headers, message] of cases) {
    const r = await request(port, '/openstack/latest/meta_data.json', { headers });
    assert.equal(r.status, 400, message);
    assert.equal(r.headers['content-type'], TEXT_HTML);
    assert.equal(
      r.text,
      `<html>\n <head>\n  <title>400 Bad Request</title>\n </head>\n <body>\n  <h1>400 Bad Request</h1>\n  ${message}<br /><br />\n\n\n\n </body>\n</html>`,
    );
  }
  const plain = await request(port, '/latest', { headers: { accept: 'text/plain' } });
  assert.equal(plain.text, '400 Bad Request\n\nX-Instance-ID header is missing from request.\n\n   ');
});

test('bad signatures: 403, 154-byte HTML for */*, 52-byte plain for text/plain or no Accept', async (t) => {
  const { port } = await startNova(t);
  const bad = [
    '', // empty
    '0'.repeat(64), // right length, wrong value
    signInstanceId(SECRET, B), // another instance's signature
    signInstanceId(SECRET, A.toUpperCase()), // the id's case matters
    signInstanceId('wrong-secret', A),
    signInstanceId(SECRET, A).toUpperCase(),
    `${signInstanceId(SECRET, A)}0`,
  ];
  for (const sig of bad) {
    const headers = { ...AS_A, 'x-instance-id-signature': sig };
    const html = await request(port, '/openstack/latest/meta_data.json', { headers });
    assert.equal(html.status, 403, sig);
    assert.equal(html.headers['content-type'], TEXT_HTML);
    assert.equal(html.text, FORBIDDEN_HTML);
    assert.equal(html.body.length, 154);
    assert.equal(html.headers['content-length'], '154');

    const plain = await request(port, '/openstack/latest/meta_data.json', {
      headers: { ...headers, accept: 'text/plain' },
    });
    assert.equal(plain.status, 403);
    assert.equal(plain.headers['content-type'], TEXT_PLAIN);
    assert.equal(plain.text, FORBIDDEN_PLAIN);
    assert.equal(plain.body.length, 52);

    const noAccept = await request(port, '/openstack/latest/meta_data.json', {
      headers: without(headers, 'accept'),
    });
    assert.equal(noAccept.text, FORBIDDEN_PLAIN);
  }
});

test('the signature uses the configured secret (§12.1 vectors)', async (t) => {
  const { port } = await startNova(t, { sharedSecret: '' });
  const headers = {
    ...AS_A,
    'x-instance-id-signature': '7cb7a84d9ab2e161031bfac7f8a6e1ecac75b5dc4ae0109c1bbce41619f29d93',
  };
  assert.equal((await request(port, '/openstack/latest/meta_data.json', { headers })).status, 200);
  assert.equal((await request(port, '/openstack/latest/meta_data.json', { headers: AS_A })).status, 403);
});

test('403 is logged as a warning without the expected signature or the secret', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const logger = createLogger({ name: 'nova-test', level: 'debug' }, sink);
  const { port } = await startNova(t, { logger, sharedSecret: 'Sup3r-S3cret-Value' });
  const expected = signInstanceId('Sup3r-S3cret-Value', A);
  const wrong = signInstanceId('other', A);
  const r = await request(port, '/latest/meta-data/', {
    headers: { ...AS_A, 'x-instance-id-signature': wrong },
  });
  assert.equal(r.status, 403);
  logger.flush();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const warning = lines.map((l) => JSON.parse(l)).find((l) => l.level === 'warn');
  assert.ok(warning, 'a warning is logged');
  assert.equal(warning.instanceId, A);
  const all = lines.join('');
  assert.ok(!all.includes(expected), 'expected signature not logged');
  assert.ok(!all.includes('Sup3r-S3cret-Value'), 'secret not logged');
  assert.ok(!all.includes(wrong), 'received signature not logged whole');
});

test('unknown instance and project mismatch are 404', async (t) => {
  const { port } = await startNova(t);
  const unknown = '00000000-0000-0000-0000-000000000000';
  const r1 = await request(port, '/openstack/latest/meta_data.json', { headers: identity(unknown, PROJECT) });
  assert.equal(r1.status, 404);
  assert.equal(r1.text, NOT_FOUND_HTML);
  const r2 = await request(port, '/openstack/latest/meta_data.json', { headers: identity(A, C_PROJECT) });
  assert.equal(r2.status, 404);
  assert.equal(r2.text, NOT_FOUND_HTML);
  const r3 = await request(port, '/openstack/latest/meta_data.json', { headers: identity(C, PROJECT) });
  assert.equal(r3.status, 404);
  const ok = await request(port, '/openstack/latest/meta_data.json', { headers: identity(C, C_PROJECT) });
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.text).uuid, C);
});

test('X-Metadata-Provider flow: X-Forwarded-For required, provider signature, lookup by fixed IP', async (t) => {
  const { port } = await startNova(t);
  const provider = 'edge-1';
  const base = { 'x-metadata-provider': provider, accept: '*/*' };
  const noXff = await request(port, '/openstack/latest/meta_data.json', { headers: base });
  assert.equal(noXff.status, 400);
  assert.match(noXff.text, /X-Forwarded-For is missing from request\./);
  const unsigned = await request(port, '/openstack/latest/meta_data.json', {
    headers: { ...base, 'x-forwarded-for': '127.0.0.2' },
  });
  assert.equal(unsigned.status, 403);
  const signed = { ...base, 'x-metadata-provider-signature': signInstanceId(SECRET, provider) };
  const ok = await request(port, '/openstack/latest/meta_data.json', {
    headers: { ...signed, 'x-forwarded-for': '127.0.0.2, 10.9.9.9' },
  });
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.text).uuid, B);
  const unknown = await request(port, '/openstack/latest/meta_data.json', {
    headers: { ...signed, 'x-forwarded-for': '127.0.0.9' },
  });
  assert.equal(unknown.status, 400);
  assert.match(unknown.text, /An unknown error has occurred\. Please try your request again\./);
});

test('serviceMetadataProxy=false: identified by the peer address, identity headers ignored', async (t) => {
  const { port } = await startNova(t, { serviceMetadataProxy: false });
  const uuidFrom = async (localAddress: string, headers: Record<string, string> = {}) => {
    const r = await request(port, '/openstack/latest/meta_data.json', { localAddress, headers });
    return r.status === 200 ? JSON.parse(r.text).uuid : r.status;
  };
  assert.equal(await uuidFrom('127.0.0.1'), A);
  assert.equal(await uuidFrom('127.0.0.2'), B);
  assert.equal(await uuidFrom('127.0.0.3'), C);
  assert.equal(await uuidFrom('127.0.0.3', identity(A, PROJECT)), C);
  assert.equal(await uuidFrom('127.0.0.9'), 404);
  // EC2 local-ipv4 and the version list work the same way.
  assert.equal(
    (await request(port, '/latest/meta-data/local-ipv4', { localAddress: '127.0.0.2' })).text,
    '127.0.0.2',
  );
  assert.equal((await request(port, '/', { localAddress: '127.0.0.9' })).status, 200);
});

test('serviceMetadataProxy=false on a dual-stack socket: IPv4-mapped peers unwrapped, ::1 is A', async (t) => {
  const { port } = await startNova(t, { serviceMetadataProxy: false }, '::');
  const b = await request(port, '/openstack/latest/meta_data.json', { localAddress: '127.0.0.2' });
  assert.equal(JSON.parse(b.text).uuid, B);
  const a = await request(port, '/openstack/latest/meta_data.json', { host: '::1', localAddress: '::1' });
  assert.equal(JSON.parse(a.text).uuid, A);
});

test('serviceMetadataProxy=false: two instances on one fixed IP is a 500', async (t) => {
  const { port, nova } = await startNova(t, { serviceMetadataProxy: false });
  nova.setInstances([
    { uuid: A, project_id: PROJECT, name: 'a', fixed_ips: ['127.0.0.4'] },
    { uuid: B, project_id: PROJECT, name: 'b', fixed_ips: ['127.0.0.4'] },
  ]);
  const r = await request(port, '/latest/meta-data/', {
    localAddress: '127.0.0.4',
    headers: { accept: '*/*' },
  });
  assert.equal(r.status, 500);
  assert.match(r.text, /An unknown error has occurred/);
  assert.equal(r.body.length, 207);
});

test('onRequest sees the request as received; stats count requests', async (t) => {
  const seen: Array<{
    method: string;
    url: string;
    headers: Record<string, unknown>;
    remoteAddress?: string;
  }> = [];
  const { port, nova } = await startNova(t, { onRequest: (info) => seen.push(info) });
  const before = nova.stats.requests;
  await request(port, '/openstack/latest/meta_data.json?x=1', {
    headers: { ...AS_A, 'user-agent': 'python-requests/2.28.1' },
  });
  await request(port, '/', { method: 'HEAD' });
  assert.equal(nova.stats.requests - before, 2);
  assert.equal(nova.stats.statuses[200], 2);
  assert.equal(seen.length, 2);
  assert.equal(seen[0]!.method, 'GET');
  assert.equal(seen[0]!.url, '/openstack/latest/meta_data.json?x=1');
  assert.equal(seen[0]!.headers['x-instance-id'], A);
  assert.equal(seen[0]!.headers['x-tenant-id'], PROJECT);
  assert.equal(seen[0]!.headers['x-instance-id-signature'], signInstanceId(SECRET, A));
  assert.equal(seen[0]!.headers['x-forwarded-for'], '10.0.0.5');
  assert.equal(seen[0]!.headers['user-agent'], 'python-requests/2.28.1');
  assert.equal(seen[0]!.remoteAddress, '127.0.0.1');
  assert.equal(seen[1]!.method, 'HEAD');
});
