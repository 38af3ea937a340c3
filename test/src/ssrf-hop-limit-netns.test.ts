/*
 * As root: the real proxy's token answer and the hooks' hop-limit rule together. The proxy (CLI, tokens
 * optional) runs in a namespace like qdhcp-, the rule from metadata-hooks is applied there, and:
 *   vm  - a guest directly attached: gets tokens over IPv4 and IPv6;
 *   ctr - a container behind the guest's router: its token answers never arrive (TTL / hop limit 1),
 *         while its ordinary requests are still answered (optional mode keeps working for it).
 * This pins the byte layout of the proxy's answer to what the rule matches.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyHopLimitRules } from '@nmp/metadata-hooks';
import { HttpGetError, NetnsLab, requireRoot } from '@nmp/testkit';
import { NETWORK, startChain } from './chain-harness.js';
import { CLI } from './fault-harness.js';

const HOSTS = { 4: '10.91.0.1', 6: 'fd00:91::1' } as const;

async function put(lab: NetnsLab, from: string, family: 4 | 6, timeoutMs = 10_000) {
  return lab.httpGet(
    from,
    {
      host: HOSTS[family],
      method: 'PUT',
      path: '/latest/api/token',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
    },
    { timeoutMs },
  );
}

test('as root: token answers of the real proxy stop at the guest, other answers go on', async (t) => {
  if (!requireRoot(t)) return;
  const chain = await startChain(t);
  const lab = await NetnsLab.create(t);
  const srv = await lab.addNamespace('srv');
  const vm = await lab.addNamespace('vm');
  const ctr = await lab.addNamespace('ctr');
  const a = await lab.addVethPair(srv, vm);
  const b = await lab.addVethPair(vm, ctr);
  await lab.addAddress(srv, a.dev1, '10.91.0.1/24');
  await lab.addAddress(vm, a.dev2, '10.91.0.5/24');
  await lab.addAddress(srv, a.dev1, 'fd00:91::1/64', { nodad: true });
  await lab.addAddress(vm, a.dev2, 'fd00:91::5/64', { nodad: true });
  await lab.addAddress(vm, b.dev1, '10.93.0.1/24');
  await lab.addAddress(ctr, b.dev2, '10.93.0.2/24');
  await lab.addAddress(vm, b.dev1, 'fd00:93::1/64', { nodad: true });
  await lab.addAddress(ctr, b.dev2, 'fd00:93::2/64', { nodad: true });
  await lab.sysctl(vm, 'net.ipv4.ip_forward', '1');
  await lab.sysctl(vm, 'net.ipv6.conf.all.forwarding', '1');
  await lab.addRoute(ctr, 'default', { via: '10.93.0.1' });
  await lab.addRoute(ctr, 'default', { via: 'fd00:93::1', ipv6: true });
  await lab.addRoute(srv, '10.93.0.0/24', { via: '10.91.0.5' });
  await lab.addRoute(srv, 'fd00:93::/64', { via: 'fd00:91::5' });

  const proxy = lab.spawn(srv, process.execPath, [
    CLI.proxy,
    '--bind',
    `${HOSTS[4]}:80`,
    '--bind',
    `[${HOSTS[6]}]:80`,
    '--network-id',
    NETWORK,
    '--metadata-proxy-socket',
    chain.socketPath,
    '--token-mode',
    'optional',
  ]);
  await proxy.waitForOutput(/ns-metadata-proxy listening/);
  for (const f of [4, 6] as const)
    await applyHopLimitRules(srv, f, { chainPrefix: `${lab.prefix}-md`, ports: [80] });

  for (const f of [4, 6] as const) {
    const direct = await put(lab, vm, f);
    assert.equal(direct.status, 200, `IPv${f}: ${direct.text}`);
    assert.match(direct.text, /^[A-Za-z0-9_-]{55}$/);
    // The container is not an instance of the sample inventory, so the chain answers 404: an answer all
    // the same, which is what matters here.
    const plain = await lab.httpGet(ctr, { host: HOSTS[f], path: '/openstack' });
    assert.equal(plain.status, 404, `IPv${f}`);
    await assert.rejects(
      put(lab, ctr, f, 2500),
      (err: unknown) => err instanceof HttpGetError && err.code === 'ETIMEDOUT',
      `IPv${f}: the token answer crossed the guest's router`,
    );
  }
});
