/* The nova-metadata-dev command: start-up line, secret from the environment, exit 2 on bad input, SIGTERM exit 0. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { A, identity, PROJECT, request } from './helpers.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

interface Ran {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 10_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Start the server, wait for its start-up line, return the child and its port. */
function start(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; port: number; line: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, '--port', '0', '--log-level', 'error', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no start-up line: ${out}`)), 10_000);
    child.stdout!.on('data', (c) => {
      out += c;
      const m = /^nova-metadata-dev: listening on http:\/\/127\.0\.0\.1:(\d+) .*$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), line: m[0] });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited early (${code}): ${out}`));
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
  });
}

test('bad flag: one message line, exit 2', async () => {
  const r = await run(['--no-such-flag']);
  assert.equal(r.code, 2);
  assert.match(r.stderr.split('\n')[0]!, /^nova-metadata-dev: Unknown argument/);
});

test('the secret is not accepted as a flag', async () => {
  const r = await run(['--metadata-proxy-shared-secret', 's3cr3t']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Unknown argument/);
  assert.ok(!r.stderr.includes('s3cr3t'), 'the value is not echoed');
});

test('missing instances file: exit 2 naming the file', async () => {
  const r = await run(['--instances', '/nonexistent/instances.json']);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr.trim(),
    'nova-metadata-dev: cannot read instances file /nonexistent/instances.json: ENOENT',
  );
});

test('invalid instances, address and port: exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nova-dev-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bad.json');
  writeFileSync(file, JSON.stringify({ instances: [{ uuid: 'u', name: 'n' }] }));
  const bad = await run(['--instances', file]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /instances\[0\]\.project_id: is required/);
  const host = await run(['--host', 'not an address!']);
  assert.equal(host.code, 2);
  assert.match(host.stderr, /^nova-metadata-dev: .*--host.*not an IP address or host name/);
  const unbindable = await run(['--host', '192.0.2.1', '--port', '0']);
  assert.equal(unbindable.code, 2);
  assert.match(unbindable.stderr, /^nova-metadata-dev: cannot listen on 192\.0\.2\.1 port 0: EADDRNOTAVAIL/);
  const port = await run(['--port', '70000']);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /must be at most 65535/);
});

test('serves the sample with the secret from the environment; SIGTERM exits 0', async (t) => {
  const { child, port, line } = await start([], { NMP_METADATA_PROXY_SHARED_SECRET: 'env-secret' });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  assert.match(line, /\(3 instances from .*sample\/instances\.json, service_metadata_proxy=true\)$/);
  assert.equal((await request(port, '/')).status, 200);
  const signed = await request(port, '/openstack/latest/meta_data.json', {
    headers: identity(A, PROJECT, 'env-secret'),
  });
  assert.equal(signed.status, 200);
  assert.equal(
    (await request(port, '/openstack/latest/meta_data.json', { headers: identity(A, PROJECT) })).status,
    403,
  );
  child.kill('SIGTERM');
  assert.equal(await exited(child), 0);
});

test('secret from --metadata-proxy-shared-secret-file; --no-service-metadata-proxy; SIGINT exits 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nova-dev-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, 'file-secret\n', { mode: 0o600 });
  const first = await start(['--metadata-proxy-shared-secret-file', secretFile]);
  t.after(() => {
    if (first.child.exitCode === null) first.child.kill('SIGKILL');
  });
  const ok = await request(first.port, '/latest/meta-data/', {
    headers: identity(A, PROJECT, 'file-secret'),
  });
  assert.equal(ok.status, 200);
  first.child.kill('SIGINT');
  assert.equal(await exited(first.child), 0);

  const direct = await start(['--no-service-metadata-proxy']);
  t.after(() => {
    if (direct.child.exitCode === null) direct.child.kill('SIGKILL');
  });
  assert.match(direct.line, /service_metadata_proxy=false/);
  const r = await request(direct.port, '/openstack/latest/meta_data.json', { localAddress: '127.0.0.2' });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.text).name, 'nmp-dev-b');
  direct.child.kill('SIGTERM');
  assert.equal(await exited(direct.child), 0);
});
