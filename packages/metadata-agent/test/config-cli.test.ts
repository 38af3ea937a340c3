/*
 * The agent CLI as an operator meets it: neutron's sample metadata_agent.ini loads unchanged, a typo'd
 * option is a warning naming file:line and a suggestion, a bad value is one line naming file, section,
 * option and value with exit status 2, flags beat the file, and --print-config never shows a secret.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const NEUTRON_SAMPLE = fileURLToPath(
  new URL('../../../common/test/fixtures/metadata_agent.ini', import.meta.url),
);
const SAMPLE_SECRET = 'Xk7#p;Q2$vR9 w';

function run(args: readonly string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function write(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}

/** The nmp additions an operator puts next to neutron's file (here: a lab inventory instead of Neutron). */
function labFile(dir: string): string {
  const inventory = write(dir, 'ports.json', JSON.stringify({ ports: [] }));
  return write(
    dir,
    'nmp.conf',
    `[DEFAULT]\nresolver = inventory\ninventory_file = ${inventory}\nstate_path = ${dir}\n`,
  );
}

test("neutron's sample metadata_agent.ini loads unchanged; --print-config masks the secret", (t) => {
  const dir = tempDir(t);
  const r = run(['--config-file', NEUTRON_SAMPLE, '--config-file', labFile(dir), '--print-config']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const out = r.stdout;
  assert.match(
    out,
    /^nova_metadata_host = nova-api\.internal\.example\.com {4}# .*metadata_agent\.ini:\d+ \[DEFAULT\] nova_metadata_host$/m,
  );
  assert.match(out, /^nova_metadata_protocol = https /m);
  assert.match(out, /^metadata_proxy_socket_mode = group /m);
  assert.match(out, /^metadata_backlog = 2048 /m);
  assert.match(out, /^nova_client_priv_key = \/etc\/neutron\/pki\/metadata-client\.key /m);
  // state_path from the second file: every $state_path value follows it.
  assert.match(out, new RegExp(`^metadata_proxy_socket = ${dir}/metadata_proxy {4}#`, 'm'));
  assert.match(out, new RegExp(`^admin_socket = ${dir}/metadata_proxy\\.admin {4}#`, 'm'));
  assert.match(
    out,
    /^metadata_proxy_shared_secret = \*\*\*\* {4}# .*metadata_agent\.ini:\d+ \[DEFAULT\] metadata_proxy_shared_secret$/m,
  );
  assert.ok(!out.includes(SAMPLE_SECRET) && !out.includes('Xk7'), 'the secret must not be printed');
});

test('a secret from the environment or a secret file is masked too, and never accepted as a flag', (t) => {
  const dir = tempDir(t);
  const lab = labFile(dir);
  const env = run(['--config-file', lab, '--print-config'], {
    NMP_METADATA_PROXY_SHARED_SECRET: 'env-secret-1',
  });
  assert.equal(env.status, 0, env.stderr);
  assert.match(
    env.stdout,
    /^metadata_proxy_shared_secret = \*\*\*\* {4}# environment NMP_METADATA_PROXY_SHARED_SECRET$/m,
  );
  assert.ok(!env.stdout.includes('env-secret-1'));
  const file = write(dir, 'secret', 'file-secret-2\n');
  const fromFile = run(['--config-file', lab, '--metadata-proxy-shared-secret-file', file, '--print-config']);
  assert.match(
    fromFile.stdout,
    /^metadata_proxy_shared_secret = \*\*\*\* {4}# --metadata-proxy-shared-secret-file$/m,
  );
  assert.ok(!fromFile.stdout.includes('file-secret-2'));
  const flag = run(['--config-file', lab, '--metadata-proxy-shared-secret', 'x', '--print-config']);
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /^metadata-agent: Unknown arguments?: metadata-proxy-shared-secret/);
});

test('flags beat the file, which beats the default', (t) => {
  const dir = tempDir(t);
  const conf = write(dir, 'a.ini', '[DEFAULT]\nnova_metadata_port = 8775\nnova_metadata_host = 10.1.1.1\n');
  const r = run([
    '--config-file',
    labFile(dir),
    '--config-file',
    conf,
    '--nova-metadata-port',
    '9999',
    '--print-config',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^nova_metadata_port = 9999 {4}# --nova-metadata-port$/m);
  assert.match(
    r.stdout,
    new RegExp(`^nova_metadata_host = 10\\.1\\.1\\.1 {4}# ${conf}:3 \\[DEFAULT\\] nova_metadata_host$`, 'm'),
  );
  assert.match(r.stdout, /^nova_metadata_timeout = 30 {4}# default$/m);
});

test('a bad value is one line naming file, section, option and value, and exit status 2', (t) => {
  const dir = tempDir(t);
  const cases: Array<[string, (f: string) => string]> = [
    [
      '[DEFAULT]\n# the port\nnova_metadata_port = eighty\n',
      (f) => `metadata-agent: ${f}:3 [DEFAULT] nova_metadata_port = 'eighty': expected an integer\n`,
    ],
    [
      '[neutron]\ninterface = intranet\n',
      (f) => `metadata-agent: ${f}:2 [neutron] interface = 'intranet': expected internal, public or admin\n`,
    ],
    [
      '[DEFAULT]\nadmin_bind = 0.0.0.0:9180\n',
      (f) =>
        `metadata-agent: ${f}:2 [DEFAULT] admin_bind = '0.0.0.0:9180': the admin listener must be a loopback address (127.0.0.0/8 or ::1): anything else could be reachable from other hosts or namespaces\n`,
    ],
  ];
  for (const [i, [text, want]] of cases.entries()) {
    const f = write(dir, `bad${i}.ini`, text);
    // Started for real (not --print-config): it must stop before opening anything.
    const r = run(['--config-file', labFile(dir), '--config-file', f]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, want(f));
    assert.equal(r.stdout, '');
  }
});

test("a typo'd option is a warning naming file:line with a suggestion; the agent still starts", async (t) => {
  const dir = tempDir(t);
  const conf = write(dir, 'a.ini', '[DEFAULT]\nnova_metadata_host = 127.0.0.1\nnova_metdata_port = 8775\n');
  const lab = labFile(dir);
  const printed = run(['--config-file', lab, '--config-file', conf, '--print-config']);
  assert.equal(printed.status, 0);
  assert.equal(
    printed.stderr,
    `metadata-agent: warning: ${conf}:3: unknown option [DEFAULT] nova_metdata_port (did you mean nova_metadata_port?); it is ignored\n`,
  );

  const child = spawn(process.execPath, [CLI, '--config-file', lab, '--config-file', conf], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines = await readLinesUntil(child, t, (l) => l.msg === 'metadata-agent listening');
  const warning = lines.find((l) => l.code === 'MDA_CONFIG_WARNING');
  assert.ok(warning, JSON.stringify(lines));
  assert.equal(warning.level, 'warn');
  assert.equal(
    warning.msg,
    `${conf}:3: unknown option [DEFAULT] nova_metdata_port (did you mean nova_metadata_port?); it is ignored`,
  );
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 0);
});

/** JSON log lines from a child's stdout until one matches (bounded by 15 s). */
async function readLinesUntil(
  child: ReturnType<typeof spawn>,
  t: TestContext,
  done: (line: Record<string, unknown>) => boolean,
): Promise<Array<Record<string, unknown>>> {
  const lines: Array<Record<string, unknown>> = [];
  let buffer = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out; stderr: ${stderr}`)), 15_000);
    t.after(() => clearTimeout(timer));
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    child.stdout!.on('data', (c: Buffer) => {
      buffer += c.toString();
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        if (done(line)) {
          clearTimeout(timer);
          resolve(lines);
        }
        nl = buffer.indexOf('\n');
      }
    });
  });
}
