/*
 * The loader: neutron's sample metadata_agent.ini loads unchanged, precedence (defaults < files in order <
 * --config-dir < environment < flags), oslo's interpolation, and the messages an operator sees for a bad
 * value, a typo'd option or section, a deprecated name, and options accepted for compatibility.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@nmp/testkit';
import { ConfigError, describeConfig, loadConfig } from '../src/config/load.js';
import { type CompatibilityList, opt } from '../src/config/schema.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/metadata_agent.ini', import.meta.url));

/** The [DEFAULT] options of reference.md §11 that an agent reads, as typed options. */
const schema = {
  statePath: opt.string({ name: 'state_path', default: '/var/lib/neutron', help: 'state' }),
  socketPath: opt.string({
    name: 'metadata_proxy_socket',
    default: '$state_path/metadata_proxy',
    help: 'socket',
  }),
  socketMode: opt.enum({
    name: 'metadata_proxy_socket_mode',
    default: 'deduce',
    choices: ['deduce', 'user', 'group', 'all'] as const,
    help: 'mode',
  }),
  proxyUser: opt.string({ name: 'metadata_proxy_user', default: '', help: 'user' }),
  proxyGroup: opt.string({ name: 'metadata_proxy_group', default: '', help: 'group' }),
  backlog: opt.int({ name: 'metadata_backlog', default: 4096, min: 1, help: 'backlog' }),
  novaHost: opt.string({
    name: 'nova_metadata_host',
    default: '127.0.0.1',
    deprecatedNames: ['nova_metadata_ip'],
    help: 'host',
  }),
  novaPort: opt.int({ name: 'nova_metadata_port', default: 8775, min: 1, max: 65535, help: 'port' }),
  novaProtocol: opt.enum({
    name: 'nova_metadata_protocol',
    default: 'http',
    choices: ['http', 'https'] as const,
    help: 'protocol',
  }),
  novaInsecure: opt.bool({ name: 'nova_metadata_insecure', default: false, help: 'insecure' }),
  caCert: opt.string({ name: 'auth_ca_cert', default: '', help: 'ca' }),
  clientCert: opt.string({ name: 'nova_client_cert', default: '', help: 'cert' }),
  clientKey: opt.string({ name: 'nova_client_priv_key', default: '', help: 'key' }),
  secret: opt.string({ name: 'metadata_proxy_shared_secret', default: '', secret: true, help: 'secret' }),
  debug: opt.bool({ name: 'debug', default: false, help: 'debug' }),
  logFile: opt.string({ name: 'log_file', default: '', help: 'log file' }),
  timeout: opt.float({ name: 'timeout', group: 'neutron', default: 5, min: 0.1, help: 'timeout' }),
  password: opt.string({ name: 'password', group: 'neutron', default: '', secret: true, help: 'pw' }),
};

const compat: CompatibilityList = {
  ignored: [
    'DEFAULT.metadata_workers',
    'DEFAULT.external_pids',
    'DEFAULT.log_dir',
    'DEFAULT.use_syslog',
    'DEFAULT.default_log_levels',
    'DEFAULT.instance_format',
    'DEFAULT.logging_*',
    'AGENT.*',
    'oslo_messaging_*.*',
  ],
  notes: {
    'DEFAULT.cache_url': 'removed in neutron Queens; use port_cache_ttl',
    'cache.*': 'use port_cache_ttl',
  },
};

function file(d: string, name: string, text: string): string {
  const p = join(d, name);
  writeFileSync(p, text);
  return p;
}

const load = (flags: Record<string, unknown>, env: Record<string, string> = {}) =>
  loadConfig(schema, { flags, env, compat });

function rejects(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.message, message);
    assert.equal(err.exitCode, 2);
    return true;
  });
}

test("neutron's sample metadata_agent.ini (every option of reference §11 set) loads unchanged", () => {
  const loaded = load({ 'config-file': [FIXTURE] });
  const c = loaded.config;
  assert.equal(c.statePath, '/var/lib/neutron');
  assert.equal(c.socketPath, '/var/lib/neutron/metadata_proxy');
  assert.equal(c.socketMode, 'group');
  assert.equal(c.proxyUser, 'neutron');
  assert.equal(c.proxyGroup, 'neutron');
  assert.equal(c.backlog, 2048);
  assert.equal(c.novaHost, 'nova-api.internal.example.com');
  assert.equal(c.novaPort, 8775);
  assert.equal(c.novaProtocol, 'https');
  assert.equal(c.novaInsecure, false);
  assert.equal(c.caCert, '/etc/ssl/certs/nova-ca.pem');
  assert.equal(c.clientCert, '/etc/neutron/pki/metadata-client.crt');
  assert.equal(c.clientKey, '/etc/neutron/pki/metadata-client.key');
  // `#` and `;` inside a value are part of it, `$$` is a literal `$` (oslo interpolates secrets too).
  assert.equal(c.secret, 'Xk7#p;Q2$vR9 w');
  assert.equal(c.debug, false);
  assert.deepEqual(loaded.warnings, []);
  assert.deepEqual(loaded.files, [FIXTURE]);
  const ignored = loaded.ignored.map((l) => l.replace(/^.*?:\d+: /, ''));
  assert.deepEqual(ignored, [
    '[DEFAULT] metadata_workers',
    '[DEFAULT] external_pids',
    '[DEFAULT] cache_url (removed in neutron Queens; use port_cache_ttl)',
    '[DEFAULT] log_dir',
    '[DEFAULT] use_syslog',
    '[DEFAULT] default_log_levels',
    '[DEFAULT] instance_format',
    '[AGENT] report_interval',
    '[AGENT] check_child_processes_action',
    '[AGENT] check_child_processes_interval',
    '[AGENT] kill_scripts_path',
    '[cache] expiration_time (use port_cache_ttl)',
    '[cache] backend (use port_cache_ttl)',
    '[cache] enabled (use port_cache_ttl)',
  ]);
  assert.match(loaded.origins.novaPort, /metadata_agent\.ini:\d+ \[DEFAULT\] nova_metadata_port$/);
  assert.ok(Object.isFrozen(c));
});

test('precedence: defaults < files in order < --config-dir (name order) < environment < flags', (t) => {
  const d = tempDir(t, 'nmp-config-');
  const a = file(d, 'a.ini', '[DEFAULT]\nnova_metadata_host = a\nnova_metadata_port = 1001\ndebug = true\n');
  const b = file(d, 'b.ini', '[DEFAULT]\nnova_metadata_host = b\nnova_metadata_port = 1002\n');
  const confd = join(d, 'conf.d');
  mkdirSync(confd);
  file(confd, '20-z.conf', '[DEFAULT]\nnova_metadata_port = 1020\n');
  file(confd, '10-y.conf', '[DEFAULT]\nnova_metadata_port = 1010\nmetadata_backlog = 7\n');
  file(confd, 'README', '[DEFAULT]\nmetadata_backlog = 999\n');

  const files = { 'config-file': [a, b] };
  assert.equal(load(files).config.novaHost, 'b');
  assert.equal(load(files).config.novaPort, 1002);
  const withDir = load({ ...files, 'config-dir': [confd] });
  assert.equal(withDir.config.novaPort, 1020);
  assert.equal(withDir.config.backlog, 7);
  assert.equal(withDir.config.debug, true);
  assert.deepEqual(withDir.files, [a, b, join(confd, '10-y.conf'), join(confd, '20-z.conf')]);

  const env = { NMP_NOVA_METADATA_PORT: '2000', NMP_NEUTRON__TIMEOUT: '2.5' };
  assert.equal(load(files, env).config.novaPort, 2000);
  assert.equal(load(files, env).config.timeout, 2.5);
  const flagged = load({ ...files, 'nova-metadata-port': '3000', debug: false }, env);
  assert.equal(flagged.config.novaPort, 3000);
  assert.equal(flagged.config.debug, false);
  assert.equal(flagged.origins.novaPort, '--nova-metadata-port');
  assert.equal(flagged.origins.novaHost, `${b}:2 [DEFAULT] nova_metadata_host`);
});

test('interpolation: $name, braced, group.name, $$, values set later, and options we do not know', (t) => {
  const d = tempDir(t, 'nmp-config-');
  const lines = [
    '[DEFAULT]',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: oslo's braced reference, not a template
    'metadata_proxy_socket = ${state_path}/sock',
    'log_dir = /var/log/neutron',
    'log_file = $log_dir/agent-$$1.log',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: oslo's braced reference, not a template
    'metadata_proxy_user = ${neutron.timeout}s',
    '[neutron]',
    'password = pa$$word-$metadata_proxy_user',
  ];
  const a = file(d, 'a.ini', lines.join('\n'));
  const b = file(d, 'b.ini', '[DEFAULT]\nstate_path = /srv/neutron\n');
  const c = load({ 'config-file': [a, b] }).config;
  assert.equal(c.socketPath, '/srv/neutron/sock');
  assert.equal(c.logFile, '/var/log/neutron/agent-$1.log');
  assert.equal(c.proxyUser, '5s');
  assert.equal(c.password, 'pa$word-5s');
  // A flag is interpolated too; a secret from the environment is taken literally.
  const f = load(
    { 'config-file': [b], 'metadata-proxy-socket': '$state_path/x' },
    { NMP_METADATA_PROXY_SHARED_SECRET: 'a$b' },
  );
  assert.equal(f.config.socketPath, '/srv/neutron/x');
  assert.equal(f.config.secret, 'a$b');
});

test('interpolation errors name the option and never show a secret', (t) => {
  const d = tempDir(t, 'nmp-config-');
  const a = file(d, 'a.ini', '[DEFAULT]\nmetadata_proxy_socket = $stat_path/sock\n');
  rejects(
    () => load({ 'config-file': [a] }),
    `${a}:2 [DEFAULT] metadata_proxy_socket = '$stat_path/sock': unknown option $stat_path in the value (write $$ for a literal $)`,
  );
  const s = file(d, 's.ini', '[DEFAULT]\nmetadata_proxy_shared_secret = hunter$2\n');
  assert.throws(
    () => load({ 'config-file': [s] }),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.message.includes('[DEFAULT] metadata_proxy_shared_secret = [secret]:') &&
      !err.message.includes('hunter'),
  );
  const loop = file(d, 'l.ini', '[DEFAULT]\nstate_path = $metadata_proxy_socket\n');
  assert.throws(() => load({ 'config-file': [loop] }), /interpolation loop/);
});

test('a bad value is one line: file:line, section, option, value, and why', (t) => {
  const d = tempDir(t, 'nmp-config-');
  const cases: Array<[string, (p: string) => string]> = [
    [
      '[DEFAULT]\n\nnova_metadata_port = eighty\n',
      (p) => `${p}:3 [DEFAULT] nova_metadata_port = 'eighty': expected an integer`,
    ],
    [
      '[DEFAULT]\nnova_metadata_port = 70000\n',
      (p) => `${p}:2 [DEFAULT] nova_metadata_port = '70000': must be at most 65535`,
    ],
    [
      '[DEFAULT]\nnova_metadata_protocol = gopher\n',
      (p) => `${p}:2 [DEFAULT] nova_metadata_protocol = 'gopher': expected one of http, https`,
    ],
    [
      '[DEFAULT]\nnova_metadata_insecure = maybe\n',
      (p) => `${p}:2 [DEFAULT] nova_metadata_insecure = 'maybe': expected true or false`,
    ],
    [
      '[DEFAULT]\ndebug = true   # for now\n',
      (p) =>
        `${p}:2 [DEFAULT] debug = 'true   # for now': expected true or false (comments are only allowed on their own line: \`#\` inside a value is part of it)`,
    ],
    ['[neutron]\ntimeout = 0\n', (p) => `${p}:2 [neutron] timeout = '0': must be at least 0.1`],
  ];
  for (const [i, [text, want]] of cases.entries()) {
    const p = file(d, `bad${i}.ini`, text);
    rejects(() => load({ 'config-file': [p] }), want(p));
  }
  rejects(() => load({ 'nova-metadata-port': 'x' }), `flag --nova-metadata-port = 'x': expected an integer`);
  rejects(
    () => load({}, { NMP_METADATA_BACKLOG: '0' }),
    `environment NMP_METADATA_BACKLOG = '0': must be at least 1`,
  );
  rejects(
    () => load({ 'config-file': [join(d, 'missing.ini')] }),
    `cannot read config file ${join(d, 'missing.ini')}: ENOENT`,
  );
  const syntax = file(d, 'syntax.ini', '[DEFAULT]\nnova_metadata_host\n');
  rejects(
    () => load({ 'config-file': [syntax] }),
    `config file ${syntax}:2: expected 'option = value', got "nova_metadata_host"`,
  );
});

test('an empty number means "not set" (oslo reads it as None): the default applies', (t) => {
  const p = file(tempDir(t, 'nmp-config-'), 'a.ini', '[DEFAULT]\nmetadata_backlog =\n[neutron]\ntimeout =\n');
  const c = load({ 'config-file': [p] }).config;
  assert.equal(c.backlog, 4096);
  assert.equal(c.timeout, 5);
});

test('unknown options and sections are warned about with file:line and a suggestion; deprecated names too', (t) => {
  const p = file(
    tempDir(t, 'nmp-config-'),
    'a.ini',
    [
      '[DEFAULT]',
      'nova_metdata_port = 8775',
      'nova_metadata_ip = 10.0.0.1',
      'totally_unrelated_option = 1',
      'timeout = 3',
      '[nuetron]',
      'password = x',
      'timeout = 2',
      '[oslo_messaging_rabbit]',
      'heartbeat_rate = 3',
      '[database]',
      'connection = mysql://',
    ].join('\n'),
  );
  const loaded = load({ 'config-file': [p] });
  assert.deepEqual(loaded.warnings, [
    `${p}:2: unknown option [DEFAULT] nova_metdata_port (did you mean nova_metadata_port?); it is ignored`,
    `${p}:3: [DEFAULT] nova_metadata_ip is deprecated; use nova_metadata_host`,
    `${p}:4: unknown option [DEFAULT] totally_unrelated_option; it is ignored`,
    `${p}:5: unknown option [DEFAULT] timeout (did you mean [neutron] timeout?); it is ignored`,
    `${p}:7: unknown section [nuetron] (did you mean [neutron]?); its options are ignored: password, timeout`,
    `${p}:12: unknown section [database]; its options are ignored: connection`,
  ]);
  assert.equal(loaded.config.novaHost, '10.0.0.1');
  assert.equal(loaded.config.novaPort, 8775);
  assert.deepEqual(loaded.ignored, [`${p}:10: [oslo_messaging_rabbit] heartbeat_rate`]);
});

test('describeConfig prints every option with its origin, secrets masked', (t) => {
  const p = file(tempDir(t, 'nmp-config-'), 'a.ini', '[DEFAULT]\nmetadata_proxy_shared_secret = topsecret\n');
  const loaded = load({ 'config-file': [p], 'nova-metadata-port': '9999' });
  const text = describeConfig(schema, loaded);
  assert.ok(!text.includes('topsecret'));
  assert.match(
    text,
    /^metadata_proxy_shared_secret = \*\*\*\* {4}# .*a\.ini:2 \[DEFAULT\] metadata_proxy_shared_secret$/m,
  );
  assert.match(text, /^nova_metadata_port = 9999 {4}# --nova-metadata-port$/m);
  assert.match(text, /^\[neutron\]\ntimeout = 5 {4}# default\npassword = '' {2}\(empty!\) {4}# default$/m);
});

test('secret files every user can read are reported (--<secret>-file and secretFile options); private ones are not', (t) => {
  const dir = tempDir(t, 'nmp-secret-file-');
  const s = {
    secret: opt.string({ name: 'metadata_proxy_shared_secret', default: '', secret: true, help: 's' }),
    key: opt.string({ name: 'client_key', default: '', secretFile: true, help: 'k' }),
    cert: opt.string({ name: 'client_cert', default: '', help: 'c' }),
  };
  const open = join(dir, 'open');
  const closed = join(dir, 'closed');
  writeFileSync(open, 'x\n', { mode: 0o644 });
  writeFileSync(closed, 'x\n', { mode: 0o640 });
  const load = (flags: Record<string, unknown>) => loadConfig(s, { flags });
  const a = load({ 'metadata-proxy-shared-secret-file': open, 'client-key': open, 'client-cert': open });
  assert.equal(a.config.secret, 'x');
  assert.deepEqual(a.exposedSecretFiles, [
    { file: open, option: 'metadata_proxy_shared_secret', mode: 0o644 },
    { file: open, option: 'client_key', mode: 0o644 },
  ]);
  assert.deepEqual(a.warnings, []);
  // Group-readable is how a service's group reads its secrets: not reported.
  assert.deepEqual(
    load({ 'metadata-proxy-shared-secret-file': closed, 'client-key': closed }).exposedSecretFiles,
    [],
  );
  // A missing key file is its reader's error, not the loader's.
  assert.deepEqual(load({ 'client-key': join(dir, 'missing') }).exposedSecretFiles, []);
});
