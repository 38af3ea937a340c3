/*
 * Hop limit 1 for session-token answers (docs/security.md), as EC2's HttpPutResponseHopLimit: a token
 * answer leaves the namespace with IP TTL / IPv6 hop limit 1, so it reaches a guest directly attached to
 * the network but dies at the first router, such as the NAT of a container runtime inside the guest.
 * Node cannot set the TTL of a TCP socket, so a rule in the namespace does it, in a chain of our own:
 *
 *   mangle <p>-OUTPUT (from OUTPUT):
 *     -p tcp -m tcp --sport <proxy port> [-m string --string <token answer mark> --algo bm] -j TTL --ttl-set 1
 *     (IPv6: -j HL --hl-set 1)
 *
 * The source port is the port the proxy listens on in the namespace (80 in qdhcp-, 9697 in qrouter-:
 * mangle OUTPUT sees the packet before the REDIRECT is undone). Scope `token` (the default) touches only
 * the segment that carries the token answer's head, which the proxy starts with the
 * X-aws-ec2-metadata-token-ttl-seconds header; TCP delivers nothing after a segment that never arrives,
 * so the token behind it is lost too, while everything else keeps its normal TTL (containers can still
 * read metadata in optional mode, as on EC2). Scope `all` gives every packet of the proxy TTL 1: stricter,
 * and then nothing behind a router in the guest reaches metadata at all (not even the TCP handshake).
 * Needs the xt_TTL / xt_HL targets (and xt_string for `token`); apply fails loudly without them.
 */
import { inNamespace, run } from '@nmp/host';
import type { HooksConfig } from './hook-records.js';
import { type IpFamily, type OurChain, parseIptablesSave, planApply, planRemove } from './iptables-rules.js';

export type HopLimitScope = 'token' | 'all';

/**
 * What the rule looks for in a token answer: the first header the proxy writes in it (ns-metadata-proxy's
 * TOKEN_TTL_HEADER; a test in test/src checks they stay equal).
 */
export const TOKEN_ANSWER_MARK = 'X-aws-ec2-metadata-token-ttl-seconds';

export interface HopLimitOptions {
  readonly chainPrefix: string;
  /** Ports the proxy listens on in the namespace (as seen before REDIRECT is undone). */
  readonly ports: readonly number[];
  readonly scope?: HopLimitScope;
}

/** The chain and its rules for one address family. */
export function hopLimitRules(family: IpFamily, o: HopLimitOptions): OurChain[] {
  const scope = o.scope ?? 'token';
  const target = family === 4 ? '-j TTL --ttl-set 1' : '-j HL --hl-set 1';
  const match = scope === 'token' ? ` -m string --string "${TOKEN_ANSWER_MARK}" --algo bm` : '';
  const ports = [...new Set(o.ports)];
  for (const p of ports)
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new RangeError(`invalid proxy port ${p}`);
  return [
    {
      table: 'mangle',
      chain: hopLimitChain(o.chainPrefix),
      from: 'OUTPUT',
      rules: ports.map((p) => `-p tcp -m tcp --sport ${p}${match} ${target}`),
    },
  ];
}

export function hopLimitChain(chainPrefix: string): string {
  return `${chainPrefix}-OUTPUT`;
}

function tools(family: IpFamily): { save: string; restore: string } {
  return family === 4
    ? { save: 'iptables-save', restore: 'iptables-restore' }
    : { save: 'ip6tables-save', restore: 'ip6tables-restore' };
}

async function saved(ns: string | undefined, family: IpFamily) {
  return parseIptablesSave((await run(inNamespace(ns, [tools(family).save, '-t', 'mangle']))).stdout);
}

async function restore(ns: string | undefined, family: IpFamily, input: string): Promise<void> {
  if (input === '') return;
  await run(inNamespace(ns, [tools(family).restore, '-w', '10', '--noflush']), { input });
}

/** Install (or refresh) the hop-limit chain in `ns`; returns the restore input used. */
export async function applyHopLimitRules(
  ns: string | undefined,
  family: IpFamily,
  options: HopLimitOptions,
): Promise<string> {
  const input = planApply(await saved(ns, family), hopLimitRules(family, options));
  await restore(ns, family, input);
  return input;
}

/** Delete the hop-limit chain and the jump to it (nothing else); '' when there was none. */
export async function removeHopLimitRules(
  ns: string | undefined,
  family: IpFamily,
  options: Pick<HopLimitOptions, 'chainPrefix'>,
): Promise<string> {
  const input = planRemove(await saved(ns, family), hopLimitRules(family, { ...options, ports: [] }));
  await restore(ns, family, input);
  return input;
}

/**
 * The hop-limit chain of the SSRF defences (hop_limit): installed for `families` when on, removed from
 * the families that had it before and no longer do. Returns the families that have it now.
 */
export async function syncHopLimit(
  config: Pick<HooksConfig, 'hopLimit' | 'chainPrefix'>,
  ns: string,
  families: readonly IpFamily[],
  ports: readonly number[],
  before: readonly IpFamily[] | undefined,
): Promise<IpFamily[]> {
  const now: IpFamily[] = config.hopLimit === 'off' ? [] : [...families];
  for (const f of now)
    await applyHopLimitRules(ns, f, {
      chainPrefix: config.chainPrefix,
      ports,
      scope: config.hopLimit === 'all' ? 'all' : 'token',
    });
  for (const f of before ?? []) {
    if (!now.includes(f)) await removeHopLimitRules(ns, f, { chainPrefix: config.chainPrefix });
  }
  return now;
}
