/*
 * As root: with hop_limit on (the SSRF defences' session tokens), `dhcp add` and `l3 add` install the
 * hop-limit chain for the proxy's port in the namespace, and `remove` takes it away again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NetnsLab, requireRoot } from '@nmp/testkit';
import { startChain } from './chain-fixture.js';

const NET = 'cccccccc-0000-4000-8000-00000000000c';
const ROUTER = 'dddddddd-0000-4000-8000-00000000000d';

async function mangle(lab: NetnsLab, ns: string, tool: 'iptables-save' | 'ip6tables-save'): Promise<string> {
  return (await lab.exec(ns, tool, ['-t', 'mangle'])).stdout;
}

test('hop_limit: dhcp and l3 add install the TTL/HL chain for the proxy port; remove deletes it', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const chain = await startChain(t, lab, [], []);
  const dhcp = await lab.addNamespace(`${chain.dhcpPrefix}${NET}`, { exactName: true });
  const vm = await lab.addNamespace('vm');
  const { dev1 } = await lab.addVethPair(dhcp, vm);
  const router = await lab.addNamespace(`${chain.routerPrefix}${ROUTER}`, { exactName: true });

  const d = await chain.hooks('dhcp', 'add', NET, '--device', dev1, '--no-proxy', '--hop-limit', 'token');
  assert.equal(d.code, 0, d.stderr);
  const v4 = await mangle(lab, dhcp, 'iptables-save');
  assert.match(v4, /-A OUTPUT -j nmp-metadata-OUTPUT/);
  assert.match(
    v4,
    /-A nmp-metadata-OUTPUT -p tcp -m tcp --sport 80 -m string --string "X-aws-ec2-metadata-token-ttl-seconds" --algo bm .*-j TTL --ttl-set 1/,
  );
  const r = await chain.hooks('dhcp', 'remove', NET);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(await mangle(lab, dhcp, 'iptables-save'), /nmp-metadata-OUTPUT/);

  const l = await chain.hooks('l3', 'add', ROUTER, '--ipv6', '--no-proxy', '--hop-limit', 'all');
  assert.equal(l.code, 0, l.stderr);
  assert.match(
    await mangle(lab, router, 'iptables-save'),
    /-A nmp-metadata-OUTPUT -p tcp -m tcp --sport 9697 -j TTL --ttl-set 1/,
  );
  assert.match(
    await mangle(lab, router, 'ip6tables-save'),
    /-A nmp-metadata-OUTPUT -p tcp -m tcp --sport 9697 -j HL --hl-set 1/,
  );
  const lr = await chain.hooks('l3', 'remove', ROUTER);
  assert.equal(lr.code, 0, lr.stderr);
  assert.doesNotMatch(await mangle(lab, router, 'iptables-save'), /nmp-metadata-OUTPUT/);
  assert.doesNotMatch(await mangle(lab, router, 'ip6tables-save'), /nmp-metadata-OUTPUT/);
});
