/* The instances file: validation names the file, the instance index and the field. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SAMPLE_INSTANCES_FILE } from '../src/index.js';
import { InstancesFileError, loadInstances, parseInstances } from '../src/instances.js';

const ok = { uuid: 'u1', project_id: 'p1', name: 'n1' };

function rejects(data: unknown, pattern: RegExp): void {
  assert.throws(
    () => parseInstances(data, 'f.json'),
    (err: unknown) => err instanceof InstancesFileError && pattern.test(err.message),
  );
}

test('the sample file loads', () => {
  const specs = loadInstances(SAMPLE_INSTANCES_FILE);
  assert.ok(specs.length >= 3);
});

test('structural errors', () => {
  rejects([], /^f\.json: expected an object with an "instances" array$/);
  rejects({ instances: {} }, /"instances" array/);
  rejects({ instances: [], extra: 1 }, /unknown top-level field "extra"/);
  rejects({ instances: [ok, 5] }, /^f\.json: instances\[1\]: expected an object, got a number$/);
});

test('field errors name the instance index and the field', () => {
  rejects({ instances: [{ project_id: 'p', name: 'n' }] }, /instances\[0\]\.uuid: is required/);
  rejects(
    { instances: [ok, { ...ok, uuid: 'u2', project_id: 7 }] },
    /instances\[1\]\.project_id: expected a string/,
  );
  rejects({ instances: [{ ...ok, colour: 'red' }] }, /instances\[0\]: unknown field "colour"/);
  rejects(
    { instances: [{ ...ok, launch_index: -1 }] },
    /instances\[0\]\.launch_index: expected a non-negative/,
  );
  rejects(
    { instances: [{ ...ok, public_keys: { k: 1 } }] },
    /instances\[0\]\.public_keys\.k: expected a string/,
  );
  rejects({ instances: [{ ...ok, meta: [] }] }, /instances\[0\]\.meta: expected an object, got an array/);
  rejects(
    { instances: [{ ...ok, fixed_ips: ['10.0.0.300'] }] },
    /instances\[0\]\.fixed_ips\[0\]: "10\.0\.0\.300" is not/,
  );
  rejects({ instances: [{ ...ok, user_data: 'x', user_data_base64: 'eA==' }] }, /either user_data or/);
  rejects(
    { instances: [{ ...ok, user_data_base64: 'not base64!' }] },
    /user_data_base64: is not valid base64/,
  );
  rejects(
    { instances: [{ ...ok, security_groups: ['default', ''] }] },
    /security_groups\[1\]: expected a non-empty/,
  );
  rejects({ instances: [{ ...ok, password: 'x'.repeat(1021) }] }, /password: is longer than 1020 bytes/);
  rejects({ instances: [ok, { ...ok }] }, /instances\[1\]\.uuid: "u1" is already used by instances\[0\]/);
});

test('file errors: missing file and bad JSON', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nova-dev-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.throws(
    () => loadInstances(join(dir, 'absent.json')),
    /cannot read instances file .*absent\.json: ENOENT/,
  );
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"instances": [');
  assert.throws(() => loadInstances(bad), /bad\.json: invalid JSON/);
});
