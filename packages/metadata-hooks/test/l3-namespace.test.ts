/*
 * L3 mode end to end, as root in real namespaces: a "qrouter" namespace with two qr- devices, each leading
 * to an instance namespace on its own network. `metadata-hooks l3 add` installs the REDIRECT/MARK/ACCEPT/DROP
 * rules (IPv4 and IPv6) in our own chains and starts the proxy on :9697 (dual-stack, as nobody). Instances
 * reach 169.254.169.254:80 (and fe80::a9fe:a9fe) through the REDIRECT and get their own metadata; 9697 itself
 * is closed to them; add twice leaves one copy of each rule; removal restores iptables exactly as it was.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { HttpGetError, isProcessAlive, NetnsLab, requireRoot, sleep } from '@nmp/testkit';
import { listMetadataRules } from '../src/iptables-rules.js';
import type { ProxyStatus } from '../src/proxy-status.js';
import { type Chain, PROXY_CLI, startChain, withDiagnostics } from './chain-fixture.js';

const ROUTER = '5b3f6e2d-1a4c-4e8f-9b0a-7c6d5e4f3a21';
const NET_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const NET_B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const INST_A = '33333333-aaaa-4aaa-8aaa-333333333333';
const INST_B = '44444444-bbbb-4bbb-8bbb-444444444444';
const MAC_A = 'fa:16:3e:00:01:0a';
const MAC_B = 'fa:16:3e:00:01:0b';
const META = '/openstack/latest/meta_data.json';

/**
 * Both families' rulesets in a comparable form: per table (sorted by name) the chains with their policy and
 * the rules in order. A table holding nothing but empty ACCEPT built-ins is left out: iptables-nft creates
 * such a table the first time it is touched, which changes no behaviour.
 */
async function saveAll(lab: NetnsLab, ns: string): Promise<string> {
  const normalise = (text: string) => {
    const tables = new Map<string, string[]>();
    let current: string[] | undefined;
    for (const line of text.split('\n')) {
      if (line.startsWith('*')) {
        current = [];
        tables.set(line.slice(1), current);
      } else if (line.startsWith(':') || line.startsWith('-A '))
        current?.push(line.replace(/\s*\[\d+:\d+\]$/, ''));
    }
    return [...tables.entries()]
      .filter(([, lines]) => lines.some((l) => !/^:[A-Z]+ ACCEPT$/.test(l)))
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([name, lines]) => `*${name}\n${lines.join('\n')}`)
      .join('\n');
  };
  const v4 = await lab.exec(ns, 'iptables-save', []);
  const v6 = await lab.exec(ns, 'ip6tables-save', []);
  return `${normalise(v4.stdout)}\n----\n${normalise(v6.stdout)}`;
}

test('router namespace: REDIRECT to the proxy, per-instance metadata, rules idempotent, exact removal', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  let chain: Chain | undefined;
  await withDiagnostics(
    () => chain,
    async () => {
      chain = await startChain(
        t,
        lab,
        [
          { uuid: INST_A, name: 'vm-a' },
          { uuid: INST_B, name: 'vm-b' },
        ],
        [
          { networkId: NET_A, ip: '10.252.0.1', deviceId: ROUTER, deviceOwner: 'network:router_interface' },
          { networkId: NET_B, ip: '10.253.0.1', deviceId: ROUTER, deviceOwner: 'network:router_interface' },
          { networkId: NET_A, ip: '10.252.0.11', mac: MAC_A, deviceId: INST_A },
          { networkId: NET_B, ip: '10.253.0.11', mac: MAC_B, deviceId: INST_B },
        ],
      );
      const r = await lab.addNamespace(`${chain.routerPrefix}${ROUTER}`, { exactName: true });
      const vmA = await lab.addNamespace('vma');
      const vmB = await lab.addNamespace('vmb');
      const a = await lab.addVethPair(r, vmA, {
        dev1: `qr-${lab.prefix}a`,
        dev2: lab.devName('a'),
        mac2: MAC_A,
      });
      const b = await lab.addVethPair(r, vmB, {
        dev1: `qr-${lab.prefix}b`,
        dev2: lab.devName('b'),
        mac2: MAC_B,
      });
      await lab.addAddress(r, a.dev1, '10.252.0.1/24');
      await lab.addAddress(r, b.dev1, '10.253.0.1/24');
      await lab.addAddress(vmA, a.dev2, '10.252.0.11/24');
      await lab.addAddress(vmB, b.dev2, '10.253.0.11/24');
      await lab.addRoute(vmA, 'default', { via: '10.252.0.1' });
      await lab.addRoute(vmB, 'default', { via: '10.253.0.1' });
      for (const [ns, dev] of [
        [r, a.dev1],
        [r, b.dev1],
        [vmA, a.dev2],
        [vmB, b.dev2],
      ] as const)
        await lab.waitForDad(ns, dev);
      // radvd's route information option for the metadata address, pointing at the router's link-local.
      const routerLla = /inet6 (fe80::[0-9a-f:]+)\//.exec(
        (await lab.ip(r, ['-6', 'addr', 'show', 'dev', a.dev1])).stdout,
      )![1]!;
      await lab.addRoute(vmA, 'fe80::a9fe:a9fe/128', { via: routerLla, dev: a.dev2 });

      // Rules someone else (neutron, the operator) has in the router namespace.
      await lab.exec(r, 'iptables', [
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-p',
        'udp',
        '--dport',
        '5353',
        '-j',
        'ACCEPT',
      ]);
      await lab.exec(r, 'iptables', [
        '-A',
        'INPUT',
        '-m',
        'comment',
        '--comment',
        'operator rule',
        '-j',
        'ACCEPT',
      ]);
      await lab.exec(r, 'ip6tables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
      const before = await saveAll(lab, r);

      const add = await chain.hooks('l3', 'add', ROUTER);
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stdout, /rules IPv4\+IPv6 .* proxy started .* on \[::\]:9697/);
      const rules4 = await listMetadataRules(r, 4, { chainPrefix: 'nmp-metadata' });
      const rules6 = await listMetadataRules(r, 6, { chainPrefix: 'nmp-metadata' });
      assert.equal(rules4.length, 9, rules4.join('\n'));
      assert.equal(rules6.length, 9, rules6.join('\n'));
      assert.ok(
        rules4.includes(
          'nat: -A nmp-metadata-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697',
        ),
        rules4.join('\n'),
      );

      // Each instance reaches 169.254.169.254:80 through the REDIRECT and gets its own metadata.
      const ra = await lab.httpGet(vmA, `http://169.254.169.254${META}`);
      assert.equal(ra.status, 200, ra.text);
      assert.equal(JSON.parse(ra.text).uuid, INST_A);
      const rb = await lab.httpGet(vmB, `http://169.254.169.254${META}`);
      assert.equal(rb.status, 200, rb.text);
      assert.equal(JSON.parse(rb.text).uuid, INST_B);
      // IPv6: fe80::a9fe:a9fe via the router, redirected by the ip6tables rule, looked up by MAC.
      const r6 = await lab.httpGet(vmA, { host: `fe80::a9fe:a9fe%${a.dev2}`, path: META });
      assert.equal(r6.status, 200, r6.text);
      assert.equal(JSON.parse(r6.text).uuid, INST_A);
      // An address the inventory does not know: 404.
      await lab.addAddress(vmA, a.dev2, '10.252.0.99/24');
      const unknown = await lab.httpGet(vmA, {
        host: '169.254.169.254',
        path: META,
        localAddress: '10.252.0.99',
      });
      assert.equal(unknown.status, 404);
      // 9697 itself is not reachable from the instances (only redirected, marked traffic is accepted).
      await assert.rejects(
        lab.httpGet(vmA, 'http://10.252.0.1:9697/', { timeoutMs: 1500 }),
        (e: unknown) => e instanceof HttpGetError && e.code === 'ETIMEDOUT',
      );

      let st = JSON.parse((await chain.hooks('status', '--json')).stdout) as ProxyStatus[];
      assert.equal(st.length, 1);
      assert.equal(st[0]!.kind, 'l3');
      assert.deepEqual(st[0]!.identity, { mode: 'router', id: ROUTER });
      assert.equal(st[0]!.healthy, true, JSON.stringify(st[0]));
      assert.deepEqual(st[0]!.listening, ['[::]:9697']);
      assert.equal(st[0]!.uid, 65534);
      const pid1 = st[0]!.pid!;

      // Twice: one copy of each rule, same proxy.
      const again = await chain.hooks('l3', 'add', ROUTER);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`proxy unchanged \\(pid ${pid1}\\)`));
      assert.deepEqual(await listMetadataRules(r, 4, { chainPrefix: 'nmp-metadata' }), rules4);
      assert.deepEqual(await listMetadataRules(r, 6, { chainPrefix: 'nmp-metadata' }), rules6);

      // Killed proxy: dead in status, back after add.
      process.kill(pid1, 'SIGKILL');
      for (let i = 0; i < 100 && isProcessAlive(pid1); i++) await sleep(20);
      const dead = await chain.hooks('status', '--json');
      assert.equal(dead.code, 3);
      assert.equal((JSON.parse(dead.stdout) as ProxyStatus[])[0]!.running, false);
      assert.match((await chain.hooks('l3', 'add', ROUTER)).stdout, /proxy started/);
      st = JSON.parse((await chain.hooks('status', '--json')).stdout) as ProxyStatus[];
      assert.equal(st[0]!.healthy, true);
      const pid2 = st[0]!.pid!;
      assert.equal(JSON.parse((await lab.httpGet(vmB, `http://169.254.169.254${META}`)).text).uuid, INST_B);

      // Removal: our chains and jumps are gone and everything else is exactly as before.
      const rm = await chain.hooks('l3', 'remove', ROUTER);
      assert.equal(rm.code, 0, rm.stderr);
      assert.equal(isProcessAlive(pid2), false);
      assert.equal(await saveAll(lab, r), before);
      assert.deepEqual(await lab.pidsIn(r), []);
      assert.deepEqual(await lab.listeners(r), []);
      assert.deepEqual(JSON.parse((await chain.hooks('status', '--json')).stdout), []);
      assert.equal((await chain.hooks('l3', 'remove', ROUTER)).code, 0);
    },
  );
});

test('router namespace without IPv6, proxy run as the systemd template would: IPv4 rules, 0.0.0.0:9697', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  let chain: Chain | undefined;
  await withDiagnostics(
    () => chain,
    async () => {
      chain = await startChain(
        t,
        lab,
        [{ uuid: INST_A, name: 'vm-a' }],
        [
          { networkId: NET_A, ip: '10.252.0.1', deviceId: ROUTER, deviceOwner: 'network:router_interface' },
          { networkId: NET_A, ip: '10.252.0.11', mac: MAC_A, deviceId: INST_A },
        ],
      );
      const r = await lab.addNamespace(`${chain.routerPrefix}${ROUTER}`, { exactName: true });
      const vmA = await lab.addNamespace('vma');
      const a = await lab.addVethPair(r, vmA, { dev1: `qr-${lab.prefix}a`, dev2: lab.devName('a') });
      await lab.addAddress(r, a.dev1, '10.252.0.1/24');
      await lab.addAddress(vmA, a.dev2, '10.252.0.11/24');
      await lab.addRoute(vmA, 'default', { via: '10.252.0.1' });
      await lab.sysctl(r, 'net.ipv6.conf.all.disable_ipv6', '1');

      const add = await chain.hooks('l3', 'add', ROUTER, '--no-proxy');
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stdout, /rules IPv4 in .*; proxy run externally .* on 0\.0\.0\.0:9697/);
      assert.equal((await listMetadataRules(r, 6, { chainPrefix: 'nmp-metadata' })).length, 0);
      assert.equal((await listMetadataRules(r, 4, { chainPrefix: 'nmp-metadata' })).length, 9);
      // Nothing listens yet: status says so.
      const before = await chain.hooks('status', '--json');
      assert.equal(before.code, 3);
      assert.equal((JSON.parse(before.stdout) as ProxyStatus[])[0]!.running, false);

      // What nmp-ns-metadata-proxy@<ns>.service runs, with the per-namespace file docs/deployment.md shows.
      const ini = join(chain.dir, `${r}.ini`);
      writeFileSync(
        ini,
        `[DEFAULT]\nbind = 0.0.0.0:9697\nrouter_id = ${ROUTER}\nmetadata_proxy_socket = ${chain.socketPath}\n` +
          'metadata_proxy_user = nobody\nmetadata_proxy_group = nogroup\n',
      );
      const proxy = lab.spawn(r, process.execPath, [PROXY_CLI, '--config-file', ini]);
      await proxy.waitForOutput(/listening/);
      const st = JSON.parse((await chain.hooks('status', '--json')).stdout) as ProxyStatus[];
      assert.equal(st[0]!.proxy, 'external');
      assert.equal(st[0]!.pid, proxy.pid);
      assert.equal(st[0]!.healthy, true, JSON.stringify(st[0]));
      assert.equal(st[0]!.uid, 65534);

      const ra = await lab.httpGet(vmA, `http://169.254.169.254${META}`);
      assert.equal(JSON.parse(ra.text).uuid, INST_A);
      assert.equal((await chain.hooks('l3', 'remove', ROUTER)).code, 0);
      assert.deepEqual(await listMetadataRules(r, 4, { chainPrefix: 'nmp-metadata' }), []);
      // Not ours to stop.
      assert.ok(isProcessAlive(proxy.pid));
    },
  );
});
