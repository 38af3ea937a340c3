/*
 * cloud-init's OpenStack datasource as the client (reference.md §8): its own code reads the metadata
 * through the whole chain and accepts it. Uses Debian's cloud-init (python3-cloudinit), which .ci/run
 * installs; skipped with a message when it is missing.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { INSTANCE_A, INSTANCE_B, startChain } from './chain-harness.js';

const PYTHON = '/usr/bin/python3';

function cloudInitMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import cloudinit.sources.DataSourceOpenStack'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found`;
  if (r.status !== 0) return 'cloud-init is not installed (apt-get install cloud-init)';
  return undefined;
}

const READ = `
import json, sys
from cloudinit.sources.DataSourceOpenStack import read_metadata_service
md = read_metadata_service(sys.argv[1], timeout=5, retries=1)
out = {
  "uuid": md["metadata"].get("uuid"),
  "hostname": md["metadata"].get("hostname"),
  "userdata_len": len(md.get("userdata") or b""),
  "has_network": md.get("networkdata") is not None,
  "vendordata": md.get("vendordata"),
  "keys": sorted(md.keys()),
}
print(json.dumps(out, default=str))
`;

/** Runs cloud-init's reader in a child, asynchronously: the chain under test lives in this process. */
async function readWithCloudInit(url: string, source: string): Promise<Record<string, unknown>> {
  // cloud-init identifies itself only by its address: bind the client to the instance's loopback address.
  const script = `import socket\n_orig = socket.create_connection\ndef _bound(addr, *a, **k):\n    k["source_address"] = (${JSON.stringify(source)}, 0)\n    return _orig(addr, *a, **k)\nsocket.create_connection = _bound\nimport urllib3.util.connection as c\n_o2 = c.create_connection\ndef _b2(addr, *a, **k):\n    k["source_address"] = (${JSON.stringify(source)}, 0)\n    return _o2(addr, *a, **k)\nc.create_connection = _b2\n${READ}`;
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(PYTHON, ['-c', script, url], { encoding: 'utf8', timeout: 60_000 }, (err, out, errOut) => {
      if (err) reject(new Error(`cloud-init failed: ${errOut || err.message}`));
      else resolve(out);
    });
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

test("cloud-init's OpenStack datasource reads the metadata through the chain", async (t) => {
  const missing = cloudInitMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  const chain = await startChain(t);
  const url = `http://127.0.0.1:${chain.networkPort}`;
  const a = await readWithCloudInit(url, '127.0.0.1');
  assert.equal(a.uuid, INSTANCE_A);
  assert.ok(Number(a.userdata_len) > 0);
  assert.equal(a.has_network, true);
  const b = await readWithCloudInit(url, '127.0.0.2');
  assert.equal(b.uuid, INSTANCE_B);
  // The paths cloud-init asked for are the ones reference.md §8 lists.
  const paths = chain.novaSeen.map((s) => s.url);
  assert.ok(paths.includes('/openstack'), paths.join(' '));
  assert.ok(
    paths.some((p) => /^\/openstack\/[0-9-]+\/meta_data\.json$/.test(p)),
    paths.join(' '),
  );
  assert.ok(
    paths.some((p) => /^\/openstack\/[0-9-]+\/vendor_data\.json$/.test(p)),
    paths.join(' '),
  );
});
