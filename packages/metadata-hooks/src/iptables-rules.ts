/*
 * The router-namespace rules of reference.md §4, rendered into chains of our own and applied atomically
 * with `iptables-restore --noflush` / `ip6tables-restore --noflush`:
 *
 *   mangle <p>-PREROUTING (from PREROUTING): mark tcp/80 to the metadata address arriving on qr-+
 *   nat    <p>-PREROUTING (from PREROUTING): REDIRECT that traffic to metadata_port (9697)
 *   filter <p>-INPUT      (from INPUT):      ACCEPT marked packets, DROP anything else to metadata_port
 *   filter <p>-FORWARD    (from FORWARD):    DROP marked packets (never route a metadata packet out)
 *
 * Idempotence: declaring `:<chain>` in a --noflush restore creates the chain or flushes it, so our rules
 * exist exactly once after every apply; the jump from the built-in chain is added only when the current
 * `iptables-save` shows none (and duplicates are deleted). Removal deletes the jumps to our chains and
 * our chains, and nothing else. Planning is pure (text in, text out) so it is tested without root.
 */
import { inNamespace, run } from '@nmp/host';

export type IpFamily = 4 | 6;
export type Table = 'mangle' | 'nat' | 'filter';

export interface MetadataRuleOptions {
  readonly chainPrefix: string;
  /** iptables -i match of tenant-facing devices (neutron: `qr-+`). */
  readonly interfaceMatch: string;
  readonly metadataPort: number;
  /** Mark value; the mask is always 0xffff (the low 16 bits, as neutron). */
  readonly mark: number;
}

export interface OurChain {
  readonly table: Table;
  readonly chain: string;
  /** Built-in chain that jumps to ours. */
  readonly from: string;
  /** Rule specifications in order, without the leading `-A <chain>`. */
  readonly rules: readonly string[];
}

const METADATA_V4 = '169.254.169.254';
const METADATA_V6 = 'fe80::a9fe:a9fe';

/** The chains and rules for one address family. */
export function metadataRules(family: IpFamily, o: MetadataRuleOptions): OurChain[] {
  const mark = `0x${o.mark.toString(16)}/0xffff`;
  // reference §4: mangle matches the exact v6 address (/128), nat the whole /64.
  const markDest = family === 4 ? `${METADATA_V4}/32` : `${METADATA_V6}/128`;
  const natDest = family === 4 ? `${METADATA_V4}/32` : `${METADATA_V6}/64`;
  const match = `-i ${o.interfaceMatch} -p tcp -m tcp --dport 80`;
  return [
    {
      table: 'mangle',
      chain: `${o.chainPrefix}-PREROUTING`,
      from: 'PREROUTING',
      rules: [`-d ${markDest} ${match} -j MARK --set-xmark ${mark}`],
    },
    {
      table: 'nat',
      chain: `${o.chainPrefix}-PREROUTING`,
      from: 'PREROUTING',
      rules: [`-d ${natDest} ${match} -j REDIRECT --to-ports ${o.metadataPort}`],
    },
    {
      table: 'filter',
      chain: `${o.chainPrefix}-INPUT`,
      from: 'INPUT',
      rules: [`-m mark --mark ${mark} -j ACCEPT`, `-p tcp -m tcp --dport ${o.metadataPort} -j DROP`],
    },
    {
      table: 'filter',
      chain: `${o.chainPrefix}-FORWARD`,
      from: 'FORWARD',
      rules: [`-m mark --mark ${mark} -j DROP`],
    },
  ];
}

export interface SavedTable {
  readonly chains: ReadonlySet<string>;
  /** `-A ...` lines as iptables-save printed them. */
  readonly rules: readonly string[];
}

/** Parse `iptables-save` output into tables. */
export function parseIptablesSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, { chains: Set<string>; rules: string[] }>();
  let current: { chains: Set<string>; rules: string[] } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = { chains: new Set(), rules: [] };
      tables.set(line.slice(1), current);
    } else if (line === 'COMMIT') current = undefined;
    else if (current && line.startsWith(':')) current.chains.add(line.slice(1).split(/\s+/)[0]!);
    else if (current && line.startsWith('-A ')) current.rules.push(line);
  }
  return tables;
}

const TABLE_ORDER: readonly Table[] = ['mangle', 'nat', 'filter'];

/** Rules (in any chain) that jump or go to `chain`. */
function jumpsTo(table: SavedTable | undefined, chain: string): string[] {
  if (!table) return [];
  const re = new RegExp(`\\s-[jg]\\s+${chain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|$)`);
  return table.rules.filter((r) => re.test(r));
}

/** Restore input that makes our chains hold exactly `chains`' rules, each jumped to once. */
export function planApply(saved: Map<string, SavedTable>, chains: readonly OurChain[]): string {
  const out: string[] = [];
  for (const table of TABLE_ORDER) {
    const mine = chains.filter((c) => c.table === table);
    if (mine.length === 0) continue;
    out.push(`*${table}`);
    for (const c of mine) out.push(`:${c.chain} - [0:0]`);
    for (const c of mine) for (const r of c.rules) out.push(`-A ${c.chain} ${r}`);
    for (const c of mine) {
      const jump = `-A ${c.from} -j ${c.chain}`;
      const existing = jumpsTo(saved.get(table), c.chain).filter((r) => r === jump);
      if (existing.length === 0) out.push(`-I ${c.from} 1 -j ${c.chain}`);
      for (let i = 1; i < existing.length; i++) out.push(`-D ${c.from} -j ${c.chain}`);
    }
    out.push('COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** Restore input that deletes every jump to our chains and the chains; '' when none of them exists. */
export function planRemove(saved: Map<string, SavedTable>, chains: readonly OurChain[]): string {
  const out: string[] = [];
  for (const table of TABLE_ORDER) {
    const t = saved.get(table);
    const mine = chains.filter((c) => c.table === table && (t?.chains.has(c.chain) ?? false));
    if (mine.length === 0 || !t) continue;
    out.push(`*${table}`);
    const names = new Set(mine.map((c) => c.chain));
    for (const c of mine) {
      for (const r of jumpsTo(t, c.chain)) {
        const inChain = r.split(/\s+/)[1]!;
        if (names.has(inChain)) continue; // goes away with the flush below
        out.push(`-D ${r.slice(3)}`);
      }
    }
    for (const c of mine) out.push(`-F ${c.chain}`);
    for (const c of mine) out.push(`-X ${c.chain}`);
    out.push('COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

function tools(family: IpFamily): { save: string; restore: string } {
  return family === 4
    ? { save: 'iptables-save', restore: 'iptables-restore' }
    : { save: 'ip6tables-save', restore: 'ip6tables-restore' };
}

async function save(ns: string | undefined, family: IpFamily): Promise<Map<string, SavedTable>> {
  const r = await run(inNamespace(ns, [tools(family).save]));
  return parseIptablesSave(r.stdout);
}

async function restore(ns: string | undefined, family: IpFamily, input: string): Promise<void> {
  if (input === '') return;
  await run(inNamespace(ns, [tools(family).restore, '-w', '10', '--noflush']), { input });
}

/** Install (or refresh) our rules in namespace `ns`. Returns the restore input used. */
export async function applyMetadataRules(
  ns: string | undefined,
  family: IpFamily,
  options: MetadataRuleOptions,
): Promise<string> {
  const input = planApply(await save(ns, family), metadataRules(family, options));
  await restore(ns, family, input);
  return input;
}

/** Delete our chains and the jumps to them from `ns`. Returns the restore input used ('' if nothing). */
export async function removeMetadataRules(
  ns: string | undefined,
  family: IpFamily,
  options: Pick<MetadataRuleOptions, 'chainPrefix'>,
): Promise<string> {
  const chains = metadataRules(family, { ...options, interfaceMatch: 'x', metadataPort: 1, mark: 1 });
  const input = planRemove(await save(ns, family), chains);
  await restore(ns, family, input);
  return input;
}

/** Our rules as they currently are in `ns` (iptables-save lines of our chains and jumps), for status and tests. */
export async function listMetadataRules(
  ns: string | undefined,
  family: IpFamily,
  options: Pick<MetadataRuleOptions, 'chainPrefix'>,
): Promise<string[]> {
  const saved = await save(ns, family);
  const chains = metadataRules(family, { ...options, interfaceMatch: 'x', metadataPort: 1, mark: 1 });
  const out: string[] = [];
  for (const c of chains) {
    const t = saved.get(c.table);
    if (!t) continue;
    for (const r of jumpsTo(t, c.chain)) out.push(`${c.table}: ${r}`);
    for (const r of t.rules) if (r.startsWith(`-A ${c.chain} `)) out.push(`${c.table}: ${r}`);
  }
  return [...new Set(out)];
}
