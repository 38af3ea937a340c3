/* Bind specifications as operators and neutron's haproxy configs write them, and addresses as we write them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BindSpecError, formatAddress, formatHostPort, listenHost, parseBind } from '../src/host-port.js';

test('accepted forms', () => {
  assert.deepEqual(parseBind('169.254.169.254:80'), {
    host: '169.254.169.254',
    port: 80,
    spec: '169.254.169.254:80',
  });
  assert.deepEqual(parseBind('[::]:9697'), { host: '::', port: 9697, spec: '[::]:9697' });
  assert.deepEqual(parseBind(':::9697'), { host: '::', port: 9697, spec: ':::9697' });
  assert.deepEqual(parseBind('0.0.0.0:9697'), { host: '0.0.0.0', port: 9697, spec: '0.0.0.0:9697' });
  const ll = parseBind('[fe80::a9fe:a9fe%tap0]:80');
  assert.deepEqual(ll, {
    host: 'fe80::a9fe:a9fe',
    port: 80,
    zone: 'tap0',
    spec: '[fe80::a9fe:a9fe%tap0]:80',
  });
  assert.equal(listenHost(ll), 'fe80::a9fe:a9fe%tap0');
  assert.equal(parseBind('fe80::a9fe:a9fe:80', 'tap1').zone, 'tap1');
});

test('refused forms name the problem', () => {
  for (const [spec, why] of [
    ['169.254.169.254', /ADDRESS:PORT/],
    ['1.2.3.4:65536', /0-65535/],
    ['1.2.3.4:http', /not a number/],
    ['host.example:80', /not an IP/],
    ['[fe80::1]:80', /needs an interface/],
    ['[fe80::1%]:80', /empty interface/],
    ['[fe80::1%a;b]:80', /bad interface/],
  ] as const) {
    assert.throws(
      () => parseBind(spec),
      (e: unknown) => e instanceof BindSpecError && why.test(e.message),
      spec,
    );
  }
});

test('host:port as written everywhere: IPv6 in brackets, zone only where it means something', () => {
  assert.equal(formatHostPort('169.254.169.254', 80), '169.254.169.254:80');
  assert.equal(formatHostPort('::', 9697), '[::]:9697');
  assert.equal(formatHostPort('fe80::a9fe:a9fe', 80, 'tap0'), '[fe80::a9fe:a9fe%tap0]:80');
  assert.equal(formatHostPort('10.0.0.1', 80, 'tap0'), '10.0.0.1:80');
  assert.equal(formatAddress({ address: '127.0.0.1', port: 8080 }), '127.0.0.1:8080');
  assert.equal(formatAddress({ address: 'fe80::a9fe:a9fe%2', port: 80 }), '[fe80::a9fe:a9fe]:80');
  assert.equal(formatAddress('/run/x.sock'), '/run/x.sock');
  assert.equal(formatAddress(null), 'null');
  // What is written reads back as the same bind.
  for (const spec of ['169.254.169.254:80', '[::]:9697', '[fe80::a9fe:a9fe%tap0]:80']) {
    const b = parseBind(spec);
    assert.equal(formatHostPort(b.host, b.port, b.zone), spec);
  }
});
