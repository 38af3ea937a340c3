/*
 * A real IMDSv2 client through the chain: the AWS SDK's MetadataService (@aws-sdk/ec2-metadata-service),
 * pointed at the proxy with its endpoint option. In required-token mode it fetches a token
 * (PUT /latest/api/token) and reads metadata with it; an IMDSv1-only client is refused with 401. With
 * tokens off, its token request gets Nova's 404 and it falls back to plain requests, as on an old EC2.
 *
 * Note on paths: the SDK appends the path to the endpoint's pathname (`/`), so request('/latest/...')
 * goes out as `//latest/...`, which the proxy refuses as not origin-form (and Nova would normpath to
 * its root). Clients pass the path without the leading slash: request('latest/meta-data/...').
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import { fetchFrom, startChain } from './chain-harness.js';
import { requestLines, startSsrfProxy } from './ssrf-harness.js';

function client(port: number, options: { v1Disabled?: boolean; fetchToken?: boolean } = {}): MetadataService {
  return new MetadataService({
    endpoint: `http://127.0.0.1:${port}`,
    ec2MetadataV1Disabled: options.v1Disabled ?? true,
    disableFetchToken: options.fetchToken === false,
    retries: 0,
    httpOptions: { timeout: 5000 },
  });
}

async function expectedInstanceId(chainPort: number): Promise<string> {
  const r = await fetchFrom(chainPort, '/latest/meta-data/instance-id');
  assert.equal(r.status, 200);
  return r.body.toString();
}

test('AWS SDK, required tokens: fetches a token and reads metadata with it', async (t) => {
  const chain = await startChain(t);
  const { port, logs, policy } = await startSsrfProxy(t, chain, { tokenMode: 'required' });
  const md = client(port);
  const id = await md.request('latest/meta-data/instance-id', {});
  assert.match(id, /^i-[0-9a-f]{8}$/);
  assert.equal(id, await expectedInstanceId(chain.networkPort));
  const hostname = await md.request('latest/meta-data/hostname', {});
  assert.ok(hostname.length > 0);
  const token = await md.fetchMetadataToken();
  assert.match(token, /^[A-Za-z0-9_-]{55}$/);
  assert.equal(policy.counts.tokensIssued, 3, 'the SDK asks for a token before each request');
  assert.equal(policy.counts.withToken, 2);
  // Every request through the proxy was the SDK's: token PUTs answered by the proxy, GETs forwarded.
  const lines = requestLines(logs);
  assert.deepEqual(
    lines.map((l) => [l.method, l.path, l.status]),
    [
      ['PUT', '/latest/api/token', 200],
      ['GET', '/latest/meta-data/instance-id', 200],
      ['PUT', '/latest/api/token', 200],
      ['GET', '/latest/meta-data/hostname', 200],
      ['PUT', '/latest/api/token', 200],
    ],
  );
});

test('AWS SDK, required tokens: an IMDSv1-only client is refused with 401', async (t) => {
  const chain = await startChain(t);
  const { port } = await startSsrfProxy(t, chain, { tokenMode: 'required' });
  const v1 = client(port, { v1Disabled: false, fetchToken: false });
  await assert.rejects(
    v1.request('latest/meta-data/instance-id', {}),
    (err: Error & { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode === 401,
  );
  assert.equal(chain.novaSeen.length, 0);
});

test('AWS SDK, optional tokens: token clients and IMDSv1 clients both read metadata', async (t) => {
  const chain = await startChain(t);
  const { port, policy } = await startSsrfProxy(t, chain, { tokenMode: 'optional' });
  const want = await expectedInstanceId(chain.networkPort);
  assert.equal(await client(port).request('latest/meta-data/instance-id', {}), want);
  assert.equal(
    await client(port, { v1Disabled: false, fetchToken: false }).request('latest/meta-data/instance-id', {}),
    want,
  );
  assert.deepEqual(policy.counts, { tokensIssued: 1, withToken: 1, withoutToken: 1 });
});

test('AWS SDK, tokens off: the token request gets 404 and the SDK falls back to plain requests', async (t) => {
  const chain = await startChain(t);
  const { port } = await startSsrfProxy(t, chain, {});
  const md = client(port, { v1Disabled: false });
  assert.equal(
    await md.request('latest/meta-data/instance-id', {}),
    await expectedInstanceId(chain.networkPort),
  );
  // With IMDSv1 disabled in the client, the missing token service is an error, as on EC2.
  await assert.rejects(
    client(port, { v1Disabled: true }).request('latest/meta-data/instance-id', {}),
    /token/,
  );
});
