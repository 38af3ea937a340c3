/*
 * What `haproxy-compat` (neutron's haproxy, through the drop-in) reads: neutron passes haproxy's own
 * arguments, so the proxy program and the log directory come from the environment, through the hooks'
 * haproxyCompatOptions schema (NMP_NS_METADATA_PROXY_COMMAND, NMP_HAPROXY_COMPAT_LOG_DIR). The proxy here
 * is a stand-in program that reports its arguments and writes its pid file, so no namespace is needed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { envName, type Schema } from '@nmp/common';
import { isProcessAlive } from '@nmp/testkit';
import { haproxyCompatOptions } from '../src/options.js';

const HOOKS_CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const FIXTURE = fileURLToPath(
  new URL('../../../ns-metadata-proxy/test/fixtures/dhcp-network-v4.conf', import.meta.url),
);

/** neutron's layout: <dir>/ns-metadata-proxy/<id>.conf, a pid file, and a stand-in proxy program. */
function setUp(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'nmp-compat-env-'));
  const configDir = join(dir, 'ns-metadata-proxy');
  mkdirSync(configDir);
  const config = join(configDir, 'net-1.conf');
  writeFileSync(config, readFileSync(FIXTURE, 'utf8'));
  const pidFile = join(dir, 'net-1.pid.haproxy');
  const proxy = join(dir, 'stand-in-proxy.mjs');
  writeFileSync(
    proxy,
    `import { writeFileSync } from 'node:fs';
const args = process.argv.slice(2);
console.log('stand-in proxy ' + args.join(' '));
writeFileSync(args[args.indexOf('--pid-file') + 1], String(process.pid));
setInterval(() => {}, 1000);
`,
  );
  t.after(() => {
    try {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // never started
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, config, pidFile, proxy };
}

function compat(args: string[], env: Record<string, string>) {
  return spawnSync(process.execPath, [HOOKS_CLI, 'haproxy-compat', ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, ...env },
  });
}

test('haproxy-compat starts the proxy NMP_NS_METADATA_PROXY_COMMAND names, its output in NMP_HAPROXY_COMPAT_LOG_DIR', (t) => {
  const { dir, config, pidFile, proxy } = setUp(t);
  const logDir = join(dir, 'logs');
  const r = compat(['-f', config, '-p', pidFile], {
    NMP_NS_METADATA_PROXY_COMMAND: proxy,
    NMP_HAPROXY_COMPAT_LOG_DIR: logDir,
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const log = readFileSync(join(logDir, 'net-1.conf.log'), 'utf8');
  assert.match(log, new RegExp(`stand-in proxy --haproxy-config ${config} --pid-file ${pidFile}`));
  assert.equal(existsSync(`${config}.log`), false, 'nothing beside the config');
});

test('haproxy-compat without NMP_HAPROXY_COMPAT_LOG_DIR (or with it empty) logs beside the config', (t) => {
  const { config, pidFile, proxy } = setUp(t);
  const r = compat(['-f', config, '-p', pidFile], {
    NMP_NS_METADATA_PROXY_COMMAND: proxy,
    NMP_HAPROXY_COMPAT_LOG_DIR: '',
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(readFileSync(`${config}.log`, 'utf8'), /^stand-in proxy --haproxy-config /m);
});

test('haproxy-compat --help lists the variables of its schema, with what each does', () => {
  const r = compat(['--help'], {});
  assert.equal(r.status, 0, r.stderr);
  const env = r.stdout.slice(r.stdout.indexOf('\nEnvironment'));
  for (const d of Object.values(haproxyCompatOptions as Schema)) {
    assert.match(
      env,
      new RegExp(`^ {2}${envName(d)} +${d.help.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'),
    );
  }
});
