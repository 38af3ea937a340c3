/*
 * Hop limit 1 for token answers: the rules as text (no root), then as root in namespaces we make:
 *
 *   srv (the proxy's namespace: a server answering like the proxy does) ── vm (a guest that routes) ── ctr
 *
 * `ctr` stands for a container behind the guest's router, the case EC2's hop limit exists for. With the
 * `token` scope a token answer reaches `vm` but not `ctr`, while ordinary answers reach both; with `all`
 * nothing from the proxy's port reaches `ctr`. Checked over IPv4 and IPv6, with idempotent apply and exact
 * removal. Needs the xt_TTL, xt_HL and xt_string targets/matches (present wherever neutron runs).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpGetError, NetnsLab, requireRoot } from '@nmp/testkit';
import {
  applyHopLimitRules,
  hopLimitChain,
  hopLimitRules,
  removeHopLimitRules,
  TOKEN_ANSWER_MARK,
} from '../src/hop-limit-rules.js';
import { parseIptablesSave, planApply, planRemove } from '../src/iptables-rules.js';

test('token scope: one rule per port, matching the token answer, TTL (v4) or HL (v6) set to 1', () => {
  const v4 = hopLimitRules(4, { chainPrefix: 'nmp-metadata', ports: [80, 9697, 80] });
  assert.deepEqual(v4, [
    {
      table: 'mangle',
      chain: 'nmp-metadata-OUTPUT',
      from: 'OUTPUT',
      rules: [
        '-p tcp -m tcp --sport 80 -m string --string "X-aws-ec2-metadata-token-ttl-seconds" --algo bm -j TTL --ttl-set 1',
        '-p tcp -m tcp --sport 9697 -m string --string "X-aws-ec2-metadata-token-ttl-seconds" --algo bm -j TTL --ttl-set 1',
      ],
    },
  ]);
  const v6 = hopLimitRules(6, { chainPrefix: 'p', ports: [80] });
  assert.deepEqual(v6[0]!.rules, [
    '-p tcp -m tcp --sport 80 -m string --string "X-aws-ec2-metadata-token-ttl-seconds" --algo bm -j HL --hl-set 1',
  ]);
  assert.equal(TOKEN_ANSWER_MARK, 'X-aws-ec2-metadata-token-ttl-seconds');
});

test('all scope: every packet from the port; bad ports refused', () => {
  assert.deepEqual(hopLimitRules(4, { chainPrefix: 'p', ports: [9697], scope: 'all' })[0]!.rules, [
    '-p tcp -m tcp --sport 9697 -j TTL --ttl-set 1',
  ]);
  assert.deepEqual(hopLimitRules(6, { chainPrefix: 'p', ports: [80], scope: 'all' })[0]!.rules, [
    '-p tcp -m tcp --sport 80 -j HL --hl-set 1',
  ]);
  for (const p of [0, 65536, 1.5, -1])
    assert.throws(() => hopLimitRules(4, { chainPrefix: 'p', ports: [p] }), RangeError, String(p));
});

test('plans: our OUTPUT chain, jumped to once; removal touches only it', () => {
  const chains = hopLimitRules(4, { chainPrefix: 'nmp-metadata', ports: [80] });
  assert.equal(hopLimitChain('nmp-metadata'), 'nmp-metadata-OUTPUT');
  assert.equal(
    planApply(new Map(), chains),
    [
      '*mangle',
      ':nmp-metadata-OUTPUT - [0:0]',
      `-A nmp-metadata-OUTPUT ${chains[0]!.rules[0]}`,
      '-I OUTPUT 1 -j nmp-metadata-OUTPUT',
      'COMMIT',
      '',
    ].join('\n'),
  );
  const saved = parseIptablesSave(
    [
      '*mangle',
      ':OUTPUT ACCEPT [0:0]',
      ':nmp-metadata-OUTPUT - [0:0]',
      ':nmp-metadata-PREROUTING - [0:0]',
      '-A OUTPUT -j nmp-metadata-OUTPUT',
      '-A OUTPUT -j operator-chain',
      '-A nmp-metadata-OUTPUT -p tcp -m tcp --sport 80 -j TTL --ttl-set 1',
      'COMMIT',
      '',
    ].join('\n'),
  );
  assert.doesNotMatch(planApply(saved, chains), /-I OUTPUT/);
  assert.equal(
    planRemove(saved, chains),
    [
      '*mangle',
      '-D OUTPUT -j nmp-metadata-OUTPUT',
      '-F nmp-metadata-OUTPUT',
      '-X nmp-metadata-OUTPUT',
      'COMMIT',
      '',
    ].join('\n'),
  );
});

// Answers as ns-metadata-proxy does: the token answer's head starts with the TTL header.
const SERVER = `
const http = require('node:http');
const s = http.createServer((req, res) => {
  if (req.method === 'PUT' && req.url === '/latest/api/token') {
    const body = 'T'.repeat(55);
    res.writeHead(200, { '${TOKEN_ANSWER_MARK}': '60', 'Content-Type': 'text/plain', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
    res.end(body);
  } else {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('hello');
  }
});
s.listen({ host: '::', port: 80, ipv6Only: false }, () => console.log('listening'));
`;

interface Topology {
  readonly srv: string;
  readonly vm: string;
  readonly ctr: string;
}

async function topology(lab: NetnsLab): Promise<Topology> {
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
  lab.spawn(srv, process.execPath, ['-e', SERVER]);
  await lab.waitForListen(srv, 80);
  return { srv, vm, ctr };
}

const HOSTS = { 4: '10.91.0.1', 6: 'fd00:91::1' } as const;

async function token(lab: NetnsLab, from: string, family: 4 | 6, timeoutMs = 10_000): Promise<string> {
  const r = await lab.httpGet(
    from,
    {
      host: HOSTS[family],
      method: 'PUT',
      path: '/latest/api/token',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
    },
    { timeoutMs },
  );
  assert.equal(r.status, 200);
  return r.text;
}

async function get(lab: NetnsLab, from: string, family: 4 | 6, timeoutMs = 10_000): Promise<string> {
  const r = await lab.httpGet(from, { host: HOSTS[family], path: '/latest/meta-data/' }, { timeoutMs });
  assert.equal(r.status, 200);
  return r.text;
}

async function lost(p: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof HttpGetError && err.code === 'ETIMEDOUT', what);
}

test('as root: token answers die behind a router in the guest, ordinary answers do not', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const { srv, vm, ctr } = await topology(lab);
  const opts = { chainPrefix: `${lab.prefix}-md`, ports: [80] };
  // Without the rule everything reaches both, so a failure below is the rule's doing.
  for (const f of [4, 6] as const) {
    assert.equal(await token(lab, ctr, f), 'T'.repeat(55));
    assert.equal(await get(lab, ctr, f), 'hello');
  }
  for (const f of [4, 6] as const) await applyHopLimitRules(srv, f, opts);
  for (const f of [4, 6] as const) {
    assert.equal(await token(lab, vm, f), 'T'.repeat(55), `directly attached guest, IPv${f}`);
    assert.equal(await get(lab, vm, f), 'hello');
    assert.equal(await get(lab, ctr, f), 'hello', `ordinary answer behind the guest's router, IPv${f}`);
    await lost(token(lab, ctr, f, 2500), `token answer behind the guest's router, IPv${f}`);
  }
  // The rule, not luck: its packet counter moved.
  const counters = await lab.exec(srv, 'iptables', [
    '-t',
    'mangle',
    '-L',
    opts.chainPrefix + '-OUTPUT',
    '-n',
    '-v',
    '-x',
  ]);
  const packets = Number(counters.stdout.split('\n')[2]?.trim().split(/\s+/)[0]);
  assert.ok(packets > 0, counters.stdout);

  // Applying again keeps one jump and one rule; removal restores the path.
  for (const f of [4, 6] as const) await applyHopLimitRules(srv, f, opts);
  const save = (await lab.exec(srv, 'iptables-save', ['-t', 'mangle'])).stdout;
  assert.equal(save.match(/-A OUTPUT -j \S+-md-OUTPUT/g)?.length, 1, save);
  assert.equal(save.match(/-j TTL --ttl-set 1/g)?.length, 1, save);
  for (const f of [4, 6] as const) assert.notEqual(await removeHopLimitRules(srv, f, opts), '');
  for (const f of [4, 6] as const) assert.equal(await removeHopLimitRules(srv, f, opts), '');
  assert.doesNotMatch((await lab.exec(srv, 'iptables-save', ['-t', 'mangle'])).stdout, /-md-OUTPUT/);
  assert.doesNotMatch((await lab.exec(srv, 'ip6tables-save', ['-t', 'mangle'])).stdout, /-md-OUTPUT/);
  for (const f of [4, 6] as const) assert.equal(await token(lab, ctr, f), 'T'.repeat(55));
});

test('as root: scope all keeps everything of the proxy from crossing a router', async (t) => {
  if (!requireRoot(t)) return;
  const lab = await NetnsLab.create(t);
  const { srv, vm, ctr } = await topology(lab);
  for (const f of [4, 6] as const)
    await applyHopLimitRules(srv, f, { chainPrefix: `${lab.prefix}-md`, ports: [80], scope: 'all' });
  for (const f of [4, 6] as const) {
    assert.equal(await get(lab, vm, f), 'hello');
    assert.equal(await token(lab, vm, f), 'T'.repeat(55));
    await lost(get(lab, ctr, f, 2500), `any answer behind the guest's router, IPv${f}`);
  }
});
