/*
 * The admin listener is never reachable from a tenant namespace. The agent runs in the root namespace
 * with admin_bind on the loopback; from an instance namespace (wired by veth to a qdhcp-style namespace,
 * as in a real network node) and from the qdhcp-style namespace itself, every address a guest could try
 * fails, while the same URL answers in the root namespace. A second test puts the agent in a namespace
 * standing for a node's root namespace, with a route from the instance to it, and shows that the path is
 * open (a wildcard listener there answers the instance) while the loopback admin listener does not. And
 * an admin_bind that is not a loopback address is refused at start, before anything listens.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { HttpGetError, NetnsLab, requireRoot } from '@nmp/testkit';
import { CLI, freePort, SAMPLE_INVENTORY, spawnCli, tempDir } from './fault-harness.js';

test('an admin_bind that is not loopback is refused at start with one line and exit status 2', (t) => {
  const dir = tempDir(t, 'nmp-admin-ns-');
  for (const bind of [
    '0.0.0.0:9180',
    '[::]:9180',
    '10.77.0.1:9180',
    '169.254.169.254:80',
    '[fe80::1]:9180',
  ]) {
    const r = spawnSync(
      process.execPath,
      [
        CLI.agent,
        '--resolver',
        'inventory',
        '--inventory-file',
        SAMPLE_INVENTORY,
        '--metadata-proxy-socket',
        join(dir, 'mp.sock'),
        '--admin-bind',
        bind,
      ],
      { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '' } },
    );
    assert.equal(r.status, 2, bind);
    assert.equal(
      r.stderr,
      `metadata-agent: flag --admin-bind = '${bind}': the admin listener must be a loopback address (127.0.0.0/8 or ::1): anything else could be reachable from other hosts or namespaces\n`,
    );
    assert.equal(r.stdout, '');
  }
});

test('from an instance namespace and a qdhcp-style namespace the admin listener cannot be reached', async (t) => {
  if (!requireRoot(t)) return;
  const dir = tempDir(t, 'nmp-admin-ns-');
  const port = await freePort();
  const agent = spawnCli(t, 'agent', CLI.agent, [
    '--resolver',
    'inventory',
    '--inventory-file',
    SAMPLE_INVENTORY,
    '--metadata-proxy-socket',
    join(dir, 'metadata_proxy'),
    '--admin-bind',
    `127.0.0.1:${port}`,
  ]);
  await agent.waitFor(/metadata-agent listening/);
  assert.match(agent.output(), new RegExp(`"admin":\\[[^\\]]*"127\\.0\\.0\\.1:${port}"`));

  const lab = await NetnsLab.create(t);
  const dhcp = await lab.addNamespace('dhcp');
  const vm = await lab.addNamespace('vm');
  const { dev1, dev2 } = await lab.addVethPair(dhcp, vm);
  await lab.addAddress(dhcp, dev1, '10.77.0.1/24');
  await lab.addAddress(dhcp, dev1, '169.254.169.254/32');
  await lab.addAddress(vm, dev2, '10.77.0.5/24');
  await lab.addRoute(vm, 'default', { via: '10.77.0.1' });

  // The listener works: from the root namespace it answers.
  const here = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(here.status, 200);

  const attempts: Array<[string, string]> = [
    [vm, `http://127.0.0.1:${port}/metrics`],
    [vm, `http://[::1]:${port}/metrics`],
    [vm, `http://10.77.0.1:${port}/metrics`],
    [vm, `http://169.254.169.254:${port}/metrics`],
    [dhcp, `http://127.0.0.1:${port}/metrics`],
    [dhcp, `http://10.77.0.1:${port}/metrics`],
  ];
  for (const [ns, url] of attempts) {
    await assert.rejects(
      lab.httpGet(ns, url, { timeoutMs: 2000 }),
      (err: unknown) =>
        err instanceof HttpGetError &&
        ['ECONNREFUSED', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH'].includes(err.code),
      `${url} from ${ns} must fail`,
    );
  }
  // Still serving in the root namespace afterwards.
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
});

test('with a route from the instance to the node, a wildcard listener answers it but the admin listener does not', async (t) => {
  if (!requireRoot(t)) return;
  const dir = tempDir(t, 'nmp-admin-ns-');
  const lab = await NetnsLab.create(t);
  const node = await lab.addNamespace('node');
  const vm = await lab.addNamespace('vm');
  const { dev1, dev2 } = await lab.addVethPair(node, vm);
  await lab.addAddress(node, dev1, '10.78.0.1/24');
  await lab.addAddress(vm, dev2, '10.78.0.5/24');
  await lab.addRoute(vm, 'default', { via: '10.78.0.1' });

  const agent = lab.spawn(node, process.execPath, [
    CLI.agent,
    '--resolver',
    'inventory',
    '--inventory-file',
    SAMPLE_INVENTORY,
    '--metadata-proxy-socket',
    join(dir, 'metadata_proxy'),
    '--admin-bind',
    '127.0.0.1:9180',
  ]);
  await agent.waitForOutput(/metadata-agent listening/);
  // What an admin listener on every address would be: reachable from the instance.
  const wildcard = lab.spawn(node, process.execPath, [
    '-e',
    "require('node:http').createServer((q, s) => s.end('open')).listen(9181, '0.0.0.0', () => console.log('up'))",
  ]);
  await wildcard.waitForOutput(/up/);

  assert.equal((await lab.httpGet(node, 'http://127.0.0.1:9180/healthz')).text, 'ok\n');
  assert.equal((await lab.httpGet(vm, 'http://10.78.0.1:9181/')).text, 'open');
  for (const url of ['http://10.78.0.1:9180/metrics', 'http://127.0.0.1:9180/metrics']) {
    await assert.rejects(
      lab.httpGet(vm, url, { timeoutMs: 2000 }),
      (err: unknown) => err instanceof HttpGetError && err.code === 'ECONNREFUSED',
      `${url} from the instance must be refused`,
    );
  }
});
