/*
 * cloud-init's OpenStack datasource (reference.md §8) against the SSRF defences: with every defence off,
 * and with tokens optional, its request sequence reads the same metadata as through a plain proxy; with a
 * required header it is refused (403) as expected, since the datasource sends no Metadata-Flavor, unless
 * the guest's cloud-init is taught to send it; with tokens required it is refused (401). Uses Debian's
 * cloud-init (python3-cloudinit); skipped with a message when it is missing.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { loadConfig } from '@nmp/common';
import { ssrfOptions, ssrfSettings } from '@nmp/ns-metadata-proxy';
import { type Chain, INSTANCE_A, startChain } from './chain-harness.js';
import { requestLines, startSsrfProxy } from './ssrf-harness.js';

const PYTHON = '/usr/bin/python3';

function cloudInitMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import cloudinit.sources.DataSourceOpenStack'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found`;
  if (r.status !== 0) return 'cloud-init is not installed (apt-get install cloud-init)';
  return undefined;
}

// Bind cloud-init's connections to the instance's address (identity is by source address), optionally
// add a header to every request it makes, then run the datasource's reader (steps 2-4 of §8).
const READ = `
import json, socket, sys
source, url, header = sys.argv[1], sys.argv[2], sys.argv[3]
_orig = socket.create_connection
def _bound(addr, *a, **k):
    k["source_address"] = (source, 0)
    return _orig(addr, *a, **k)
socket.create_connection = _bound
import urllib3.util.connection as c
_o2 = c.create_connection
def _b2(addr, *a, **k):
    k["source_address"] = (source, 0)
    return _o2(addr, *a, **k)
c.create_connection = _b2
if header:
    from cloudinit import url_helper
    name, value = header.split(":", 1)
    _readurl = url_helper.readurl
    def _with_header(*a, **k):
        h = dict(k.get("headers") or {})
        h[name.strip()] = value.strip()
        k["headers"] = h
        return _readurl(*a, **k)
    url_helper.readurl = _with_header
from cloudinit.sources.DataSourceOpenStack import read_metadata_service
md = read_metadata_service(url, timeout=5, retries=1)
print(json.dumps({"uuid": md["metadata"].get("uuid"), "userdata_len": len(md.get("userdata") or b""),
  "has_network": md.get("networkdata") is not None}))
`;

interface Outcome {
  readonly ok: boolean;
  readonly result?: { uuid: string; userdata_len: number; has_network: boolean };
  readonly stderr: string;
}

function readWithCloudInit(
  port: number,
  options: { source?: string; header?: string } = {},
): Promise<Outcome> {
  const url = `http://127.0.0.1:${port}`;
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      ['-c', READ, options.source ?? '127.0.0.1', url, options.header ?? ''],
      { encoding: 'utf8', timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) resolve({ ok: false, stderr: stderr || err.message });
        else resolve({ ok: true, result: JSON.parse(stdout.trim().split('\n').pop()!), stderr });
      },
    );
  });
}

/** The OpenStack paths Nova served, in order (the EC2 crawl goes to 169.254.169.254, not to us). */
function novaPaths(chain: Chain, from = 0): string[] {
  return chain.novaSeen.slice(from).map((s) => s.url);
}

function assertSection8Sequence(paths: readonly string[]): void {
  const v = /^\/openstack\/([0-9]{4}-[0-9]{2}-[0-9]{2}|latest)\//.exec(
    paths.find((p) => /meta_data/.test(p)) ?? '',
  )?.[1];
  assert.ok(v, paths.join(' '));
  // The library reader starts at step 2 (the version list); step 1's probe is the same GET /openstack.
  assert.deepEqual(paths, [
    '/openstack',
    `/openstack/${v}/meta_data.json`,
    `/openstack/${v}/user_data`,
    `/openstack/${v}/vendor_data.json`,
    `/openstack/${v}/vendor_data2.json`,
    `/openstack/${v}/network_data.json`,
  ]);
}

test('cloud-init, all defences off: the same sequence and metadata as through a plain proxy', async (t) => {
  const missing = cloudInitMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  const chain = await startChain(t);
  const baseline = await readWithCloudInit(chain.networkPort);
  assert.ok(baseline.ok, baseline.stderr);
  const plainPaths = novaPaths(chain);

  // Defaults of [metadata_ssrf]: no policy at all on the request path.
  const defaults = loadConfig(ssrfOptions, { flags: {}, env: {} }).config;
  assert.equal(ssrfSettings(defaults), undefined);
  // And a policy object with every defence off, should one be built anyway.
  const { port } = await startSsrfProxy(t, chain, {});
  const before = chain.novaSeen.length;
  const off = await readWithCloudInit(port);
  assert.ok(off.ok, off.stderr);
  assert.deepEqual(off.result, baseline.result);
  assert.equal(off.result!.uuid, INSTANCE_A);
  assert.ok(off.result!.userdata_len > 0);
  assert.equal(off.result!.has_network, true);
  assertSection8Sequence(novaPaths(chain, before));
  assert.deepEqual(novaPaths(chain, before), plainPaths);
});

test('cloud-init, tokens optional: unchanged (it sends no token, and none is needed)', async (t) => {
  const missing = cloudInitMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  const chain = await startChain(t);
  const { port, policy, logs } = await startSsrfProxy(t, chain, { tokenMode: 'optional' });
  const r = await readWithCloudInit(port);
  assert.ok(r.ok, r.stderr);
  assert.equal(r.result!.uuid, INSTANCE_A);
  assertSection8Sequence(novaPaths(chain));
  assert.ok(requestLines(logs).every((l) => l.code === undefined));
  assert.equal(policy.counts.withoutToken, 6);
});

test('cloud-init, required header: every request refused with 403, the datasource finds nothing', async (t) => {
  const missing = cloudInitMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  const chain = await startChain(t);
  const { port, logs } = await startSsrfProxy(t, chain, {
    requiredHeader: { name: 'metadata-flavor', value: 'OpenStack' },
  });
  const r = await readWithCloudInit(port);
  assert.equal(r.ok, false);
  // The version list fails, so it falls back to `latest`, whose meta_data.json is mandatory.
  assert.match(r.stderr, /NonReadable: Missing mandatory path: \S+\/openstack\/latest\/meta_data\.json/);
  assert.equal(chain.novaSeen.length, 0);
  const lines = requestLines(logs);
  assert.deepEqual(
    lines.map((l) => [l.path, l.status, l.reason]),
    [
      ['/openstack', 403, 'header_missing'],
      ['/openstack/latest/meta_data.json', 403, 'header_missing'],
    ],
  );
});

test('cloud-init, required header: a guest whose cloud-init sends it reads everything', async (t) => {
  const missing = cloudInitMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  const chain = await startChain(t);
  const { port } = await startSsrfProxy(t, chain, {
    requiredHeader: { name: 'metadata-flavor', value: 'OpenStack' },
  });
  const r = await readWithCloudInit(port, { header: 'Metadata-Flavor: OpenStack' });
  assert.ok(r.ok, r.stderr);
  assert.equal(r.result!.uuid, INSTANCE_A);
  assertSection8Sequence(novaPaths(chain));
});

test('cloud-init, tokens required: refused with 401 (it never fetches a token)', async (t) => {
  const missing = cloudInitMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  const chain = await startChain(t);
  const { port, logs } = await startSsrfProxy(t, chain, { tokenMode: 'required' });
  const r = await readWithCloudInit(port);
  assert.equal(r.ok, false);
  assert.match(r.stderr, /NonReadable: Missing mandatory path: \S+\/openstack\/latest\/meta_data\.json/);
  assert.equal(chain.novaSeen.length, 0);
  assert.deepEqual(
    requestLines(logs).map((l) => [l.path, l.status, l.reason]),
    [
      ['/openstack', 401, 'token_missing'],
      ['/openstack/latest/meta_data.json', 401, 'token_missing'],
    ],
  );
});
