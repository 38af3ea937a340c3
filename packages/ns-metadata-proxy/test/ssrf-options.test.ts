/*
 * The [metadata_ssrf] options: all off by default (so the request path does not even consult the policy),
 * a global file overridden per proxy by a later file or a flag, values checked where they are read (file
 * and line in the message), and the required header refused when the proxy would strip or rewrite it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { ConfigError, loadConfig } from '@nmp/common';
import { tempDir } from '@nmp/testkit';
import { parseRequiredHeader, ssrfOptions, ssrfSettings } from '../src/ssrf/options.js';

function file(t: TestContext, name: string, text: string): string {
  const dir = tempDir(t, 'nmp-ssrf-opt-');
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test('defaults: every defence off, and ssrfSettings says there is nothing to do', () => {
  const { config, warnings } = loadConfig(ssrfOptions, { flags: {}, env: {} });
  assert.deepEqual(warnings, []);
  assert.equal(config.tokenMode, 'off');
  assert.equal(config.tokenMaxTtl, 21600);
  assert.equal(config.requiredHeader, '');
  assert.equal(config.refuseForwardedFor, false);
  assert.deepEqual(config.pathAllow, []);
  assert.deepEqual(config.pathDeny, []);
  assert.equal(ssrfSettings(config), undefined);
});

test('global file, then a per-proxy file, then flags: later wins option by option', (t) => {
  const global = file(
    t,
    'global.ini',
    '[metadata_ssrf]\ntoken_mode = optional\ntoken_max_ttl = 3600\nrequired_header = Metadata-Flavor: OpenStack\npath_deny = /**/password\n',
  );
  const perProxy = file(
    t,
    'qrouter-1.ini',
    '[metadata_ssrf]\ntoken_mode = required\nrefuse_forwarded_for = true\n',
  );
  const { config } = loadConfig(ssrfOptions, {
    flags: {
      'config-file': [global, perProxy],
      'path-deny': ['/openstack/*/user_data', '/latest/user-data'],
    },
    env: {},
  });
  const s = ssrfSettings(config)!;
  assert.equal(s.tokenMode, 'required');
  assert.equal(s.tokenMaxTtl, 3600);
  assert.deepEqual(s.requiredHeader, { name: 'metadata-flavor', value: 'OpenStack' });
  assert.equal(s.refuseForwardedFor, true);
  assert.deepEqual(s.pathDeny, ['/openstack/*/user_data', '/latest/user-data']);
  assert.ok(Object.isFrozen(s));
});

test('the environment can set them too (NMP_METADATA_SSRF__*)', () => {
  const { config } = loadConfig(ssrfOptions, {
    flags: {},
    env: { NMP_METADATA_SSRF__TOKEN_MODE: 'optional', NMP_METADATA_SSRF__PATH_ALLOW: '/openstack,/latest' },
  });
  const s = ssrfSettings(config)!;
  assert.equal(s.tokenMode, 'optional');
  assert.deepEqual(s.pathAllow, ['/openstack', '/latest']);
});

test('bad values are refused where they were written', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['token_mode = always', /token_mode.*expected one of off, optional, required/],
    ['token_max_ttl = 0', /token_max_ttl/],
    ['token_max_ttl = 21601', /token_max_ttl/],
    ['required_header = Metadata-Flavor', /required_header.*expected 'Name: value'/],
    ['required_header = Bad Name: x', /invalid header name/],
    ['required_header = X-Forwarded-For: 1.2.3.4', /cannot be required/],
    ['required_header = Host: 169.254.169.254', /cannot be required/],
    ['required_header = X-aws-ec2-metadata-token: x', /cannot be required/],
    ['path_allow = openstack', /must start with \//],
    ['path_deny = /a/../b', /dot segment/],
  ];
  for (const [line, re] of cases) {
    const path = file(t, 'bad.ini', `[metadata_ssrf]\n${line}\n`);
    assert.throws(
      () => loadConfig(ssrfOptions, { flags: { 'config-file': [path] }, env: {} }),
      (err: unknown) =>
        err instanceof ConfigError && re.test(err.message) && err.message.includes('bad.ini:2'),
      line,
    );
  }
});

test('parseRequiredHeader: name lower-cased, value kept exactly, empty means off', () => {
  assert.deepEqual(parseRequiredHeader('  Metadata-Flavor :  OpenStack  '), {
    name: 'metadata-flavor',
    value: 'OpenStack',
  });
  assert.deepEqual(parseRequiredHeader('X-Metadata: a:b c'), { name: 'x-metadata', value: 'a:b c' });
  assert.equal(parseRequiredHeader(''), undefined);
  assert.throws(() => parseRequiredHeader('X-A: caf\u00e9'), ConfigError);
});
