/* The environment a child without secrets gets (withoutSecrets). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withoutSecrets } from '../src/runtime.js';

test('withoutSecrets drops what holds a secret, by name or by value, and keeps settings', () => {
  const env = {
    PATH: '/usr/bin',
    HOME: '/root',
    NMP_METADATA_PROXY_SHARED_SECRET: 'x',
    NMP_NEUTRON__PASSWORD: 'x',
    NMP_NEUTRON__APPLICATION_CREDENTIAL_SECRET: 'x',
    OS_PASSWORD: 'x',
    OS_TOKEN: 'x',
    AWS_SECRET_ACCESS_KEY: 'x',
    AWS_SESSION_TOKEN: 'x',
    GITHUB_API_KEY: 'x',
    SSH_PRIVATE_KEY_PATH: 'x',
    NMP_TRANSPORT_URL: 'rabbit://neutron:hunter2@10.0.0.1:5672/',
    NMP_SOMETHING_ELSE: 'x',
    NMP_METADATA_SSRF__TOKEN_MODE: 'required',
    NMP_METADATA_SSRF__TOKEN_KEY_FILE: '/etc/nmp/key',
    NMP_METADATA_HAPROXY__TIMEOUT_CLIENT: '5',
    KEYBOARD: 'us',
    UNSET: undefined,
  };
  assert.deepEqual(withoutSecrets(env, ['NMP_SOMETHING_ELSE']), {
    PATH: '/usr/bin',
    HOME: '/root',
    NMP_METADATA_SSRF__TOKEN_MODE: 'required',
    NMP_METADATA_SSRF__TOKEN_KEY_FILE: '/etc/nmp/key',
    NMP_METADATA_HAPROXY__TIMEOUT_CLIENT: '5',
    KEYBOARD: 'us',
  });
});
