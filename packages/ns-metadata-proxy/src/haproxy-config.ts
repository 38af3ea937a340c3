/*
 * Reader for the haproxy configuration that neutron's DHCP, L3 and OVN metadata agents generate for the
 * metadata proxy (reference §2.2, §2.5, §15), so that our proxy can be started from that file unchanged
 * (`--haproxy-config`): a site points neutron's `haproxy` executable at us and keeps its agents as they are.
 *
 * What is read: `global` log-tag / log level / user / group / pidfile / maxconn; `timeout *` in `defaults`
 * (overridden by the same lines in `listen`); the two stick-table backends and their `deny_status 429`
 * rules (rate limiting); in `listen`: `bind` lines, `server <name> <unix socket>`, and the
 * `http-request set-header X-Neutron-{Network,Router}-ID <id>` line (or the OVN agent's
 * `http-request add-header X-OVN-Network-ID <id>`) that decides the mode. Every other
 * directive is ignored (haproxy features the proxy does not need). Errors name the file and line.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import {
  IDENTITY_HEADER_NAME,
  IDENTITY_MODES,
  type IdentityMode,
  isNeutronId,
  type ProgramErrorCode,
} from '@nmp/common';

export interface HaproxyBind {
  /** Address as an IP literal; `0.0.0.0` for haproxy's empty or `*` host, `::` for `:::port`. */
  readonly host: string;
  readonly port: number;
  /** `interface <dev>` on the bind line (needed for the link-local IPv6 address). */
  readonly interface?: string;
}

export interface HaproxyTimeouts {
  /** All in milliseconds; neutron's defaults (30/30/32/32/30 s) when the file has no such line. */
  readonly httpRequest: number;
  readonly connect: number;
  readonly client: number;
  readonly server: number;
  readonly keepAlive: number;
}

export interface HaproxyRateLimit {
  /** From the stick-table type: `ip` -> 4, `ipv6` -> 6. */
  readonly ipVersion: 4 | 6;
  /** Seconds. */
  readonly baseWindow: number;
  /** Requests allowed per base window (haproxy denies when the rate is greater than this). */
  readonly baseLimit: number;
  readonly burstWindow: number;
  readonly burstLimit: number;
}

export interface HaproxyMetadataConfig {
  readonly binds: readonly HaproxyBind[];
  /** Path of the agent's UNIX socket (`server metadata /var/lib/neutron/metadata_proxy`). */
  readonly socketPath: string;
  /** `network` for X-Neutron-Network-ID, `router` for X-Neutron-Router-ID, `ovn` for X-OVN-Network-ID. */
  readonly mode: IdentityMode;
  readonly id: string;
  readonly pidFile?: string;
  readonly user?: string;
  readonly group?: string;
  readonly timeouts: HaproxyTimeouts;
  readonly rateLimit?: HaproxyRateLimit;
  readonly logTag?: string;
  /** Level from `log /dev/log local0 <level>` (`info` or `debug` as neutron writes it). */
  readonly logLevel?: string;
  readonly maxConn?: number;
  /** Headers the file deletes before setting the identity header (informational; we delete more). */
  readonly deletedHeaders: readonly string[];
}

export class HaproxyConfigError extends Error {
  readonly code = 'MDP_ERR_HAPROXY_CONFIG' satisfies ProgramErrorCode;
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly reason: string,
  ) {
    super(line === undefined ? `${file}: ${reason}` : `${file}:${line}: ${reason}`);
    this.name = 'HaproxyConfigError';
  }
}

export const NEUTRON_HAPROXY_TIMEOUTS: HaproxyTimeouts = Object.freeze({
  httpRequest: 30_000,
  connect: 30_000,
  client: 32_000,
  server: 32_000,
  keepAlive: 30_000,
});

const TIMEOUT_KEYS: Readonly<Record<string, keyof HaproxyTimeouts>> = {
  'http-request': 'httpRequest',
  connect: 'connect',
  client: 'client',
  server: 'server',
  'http-keep-alive': 'keepAlive',
};

const UNIT_MS: Readonly<Record<string, number>> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

interface Line {
  readonly no: number;
  readonly words: readonly string[];
  readonly text: string;
}

/** Read and parse a neutron-generated haproxy config file. */
export async function readHaproxyConfig(file: string): Promise<HaproxyMetadataConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new HaproxyConfigError(
      file,
      undefined,
      `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  return parseHaproxyConfig(text, file);
}

/** Parse the text of a neutron-generated haproxy config. `file` is used in error messages only. */
export function parseHaproxyConfig(text: string, file = '<haproxy config>'): HaproxyMetadataConfig {
  try {
    return parseLines(text, file);
  } catch (err) {
    // Helpers below do not know the file name; put it in here.
    if (err instanceof HaproxyConfigError && err.file === '')
      throw new HaproxyConfigError(file, err.line, err.reason);
    throw err;
  }
}

function parseLines(text: string, file: string): HaproxyMetadataConfig {
  const fail = (line: number | undefined, why: string): never => {
    throw new HaproxyConfigError(file, line, why);
  };

  let section: { kind: string; name: string; line: number } | undefined;
  const defaultsTimeouts: Partial<Record<keyof HaproxyTimeouts, number>> = {};
  const listenTimeouts: Partial<Record<keyof HaproxyTimeouts, number>> = {};
  const binds: HaproxyBind[] = [];
  const tables = new Map<string, { type: 4 | 6; window: number; line: number }>();
  const denies: { table: string; limit: number; line: number }[] = [];
  const deletedHeaders: string[] = [];
  let listenSeen: number | undefined;
  let socketPath: string | undefined;
  let identity: { mode: HaproxyMetadataConfig['mode']; id: string; line: number } | undefined;
  let pidFile: string | undefined;
  let user: string | undefined;
  let group: string | undefined;
  let logTag: string | undefined;
  let logLevel: string | undefined;
  let maxConn: number | undefined;

  for (const l of splitLines(text)) {
    const [kw, ...args] = l.words as [string, ...string[]];
    if (
      ['global', 'defaults', 'listen', 'backend', 'frontend', 'resolvers', 'peers', 'userlist'].includes(kw)
    ) {
      section = { kind: kw, name: args[0] ?? '', line: l.no };
      if (kw === 'listen') {
        if (listenSeen !== undefined)
          fail(l.no, `a second 'listen' section (the first is at line ${listenSeen}); only one is supported`);
        listenSeen = l.no;
      }
      if (kw === 'frontend') fail(l.no, "'frontend' sections are not supported; neutron writes one 'listen'");
      continue;
    }
    if (!section) fail(l.no, `'${kw}' outside any section`);
    const s = section!;
    switch (s.kind) {
      case 'global':
        if (kw === 'log-tag') logTag = need(args, 0, l, 'log-tag needs a value');
        else if (kw === 'user') user = need(args, 0, l, 'user needs a name or uid');
        else if (kw === 'group') group = need(args, 0, l, 'group needs a name or gid');
        else if (kw === 'pidfile') pidFile = need(args, 0, l, 'pidfile needs a path');
        else if (kw === 'maxconn') maxConn = positiveInt(need(args, 0, l, 'maxconn needs a number'), l);
        else if (kw === 'log' && args.length >= 3) logLevel = args[2];
        break;
      case 'defaults':
        if (kw === 'timeout') parseTimeout(args, l, defaultsTimeouts);
        break;
      case 'backend':
        if (kw === 'stick-table') tables.set(s.name, { ...parseStickTable(args, l), line: l.no });
        break;
      case 'listen':
        if (kw === 'timeout') parseTimeout(args, l, listenTimeouts);
        else if (kw === 'bind') binds.push(parseBindLine(args, l));
        else if (kw === 'server') {
          if (socketPath !== undefined) fail(l.no, "more than one 'server' line; the proxy has one upstream");
          socketPath = parseServer(args, l);
        } else if (kw === 'http-request') {
          const action = args[0];
          if (action === 'set-header' || action === 'add-header') {
            const name = need(args, 1, l, `${action} needs a header name`);
            const value = need(args, 2, l, `${action} ${name} needs a value`);
            const lower = name.toLowerCase();
            if (lower === 'x-ovn-router-id')
              fail(
                l.no,
                "X-OVN-Router-ID is not supported: neutron's OVN metadata agent looks instances up by network only",
              );
            const mode = MODE_OF_HEADER.get(lower);
            if (mode !== undefined) {
              if (identity)
                fail(
                  l.no,
                  `a second identity header (the first is at line ${identity.line}); exactly one is allowed`,
                );
              identity = { mode, id: value, line: l.no };
            }
          } else if (action === 'del-header') {
            deletedHeaders.push(need(args, 1, l, 'del-header needs a header name'));
          } else if (action === 'deny') {
            const d = parseDeny(args, l);
            if (d) denies.push({ ...d, line: l.no });
          }
        }
        break;
      default:
        break;
    }
  }

  if (listenSeen === undefined) fail(undefined, "no 'listen' section");
  if (binds.length === 0) fail(listenSeen, "the 'listen' section has no 'bind' line");
  if (socketPath === undefined)
    fail(listenSeen, "the 'listen' section has no 'server <name> <unix socket>' line");
  if (!identity)
    fail(
      listenSeen,
      "no 'http-request set-header X-Neutron-Network-ID|X-Neutron-Router-ID <id>' (or 'add-header X-OVN-Network-ID <id>') line",
    );
  if (!isNeutronId(identity!.id))
    fail(identity!.line, `identity '${identity!.id}' is not a plausible network or router id`);

  const timeouts: HaproxyTimeouts = Object.freeze({
    ...NEUTRON_HAPROXY_TIMEOUTS,
    ...defaultsTimeouts,
    ...listenTimeouts,
  });
  const rateLimit = buildRateLimit(tables, denies, fail);

  return Object.freeze({
    binds: Object.freeze(binds),
    socketPath: socketPath!,
    mode: identity!.mode,
    id: identity!.id,
    ...(pidFile !== undefined ? { pidFile } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(group !== undefined ? { group } : {}),
    timeouts,
    ...(rateLimit ? { rateLimit } : {}),
    ...(logTag !== undefined ? { logTag } : {}),
    ...(logLevel !== undefined ? { logLevel } : {}),
    ...(maxConn !== undefined ? { maxConn } : {}),
    deletedHeaders: Object.freeze(deletedHeaders),
  });
}

/** The mode of each identity header, lower-cased (set-header or add-header: we delete client copies anyway). */
const MODE_OF_HEADER: ReadonlyMap<string, IdentityMode> = new Map(
  IDENTITY_MODES.map((mode) => [IDENTITY_HEADER_NAME[mode], mode]),
);

function* splitLines(text: string): Generator<Line> {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    // haproxy comments start with '#' at a word boundary; neutron writes none inside values.
    const raw = lines[i]!.replace(/(^|\s)#.*$/, '').trim();
    if (raw === '') continue;
    yield { no: i + 1, words: raw.split(/\s+/), text: raw };
  }
}

function need(args: readonly string[], i: number, l: Line, why: string): string {
  const v = args[i];
  if (v === undefined || v === '') throw new HaproxyConfigError('', l.no, why);
  return v;
}

function positiveInt(text: string, l: Line): number {
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new HaproxyConfigError('', l.no, `'${text}' is not a positive integer`);
  return Number(text);
}

/** haproxy time: a number with an optional unit (us, ms, s, m, h, d); no unit means milliseconds. */
export function parseHaproxyTime(text: string): number | undefined {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!;
}

function parseTimeout(
  args: readonly string[],
  l: Line,
  into: Partial<Record<keyof HaproxyTimeouts, number>>,
): void {
  const key = TIMEOUT_KEYS[args[0] ?? ''];
  if (!key) return; // timeouts we do not implement (tunnel, queue, ...) are ignored like other directives
  const value = need(args, 1, l, `timeout ${args[0]} needs a value`);
  const ms = parseHaproxyTime(value);
  if (ms === undefined || ms < 1)
    throw new HaproxyConfigError(
      '',
      l.no,
      `timeout ${args[0]} '${value}' is not a haproxy time (e.g. 30s, 500ms)`,
    );
  into[key] = ms;
}

function parseStickTable(args: readonly string[], l: Line): { type: 4 | 6; window: number } {
  const typeAt = args.indexOf('type');
  const type = typeAt >= 0 ? args[typeAt + 1] : undefined;
  if (type !== 'ip' && type !== 'ipv6')
    throw new HaproxyConfigError('', l.no, `stick-table type '${type ?? ''}' is not supported (ip or ipv6)`);
  const storeAt = args.indexOf('store');
  const store = storeAt >= 0 ? (args[storeAt + 1] ?? '') : '';
  const m = /(?:^|,)http_req_rate\(([^)]+)\)/.exec(store);
  if (!m) throw new HaproxyConfigError('', l.no, "stick-table must 'store http_req_rate(<window>)'");
  const ms = parseHaproxyTime(m[1]!);
  if (ms === undefined || ms < 1000)
    throw new HaproxyConfigError('', l.no, `http_req_rate window '${m[1]}' must be at least 1s`);
  return { type: type === 'ip' ? 4 : 6, window: Math.round(ms / 1000) };
}

/** `deny deny_status 429 if { src_http_req_rate(<table>) gt <n> }` -> table and limit; other denies ignored. */
function parseDeny(args: readonly string[], l: Line): { table: string; limit: number } | undefined {
  const text = args.join(' ');
  const m = /\bsrc_http_req_rate\(([^)\s]+)\)\s+(gt|ge)\s+(\d+)/.exec(text);
  if (!m) return undefined;
  if (!/deny_status\s+429\b/.test(text))
    throw new HaproxyConfigError('', l.no, 'rate-limit deny rules must use deny_status 429');
  // `ge N` denies from the N-th request: the same as `gt N-1`.
  const limit = m[2] === 'gt' ? Number(m[3]) : Number(m[3]) - 1;
  if (limit < 1) throw new HaproxyConfigError('', l.no, 'rate limit must allow at least one request');
  return { table: m[1]!, limit };
}

function buildRateLimit(
  tables: Map<string, { type: 4 | 6; window: number; line: number }>,
  denies: readonly { table: string; limit: number; line: number }[],
  fail: (line: number | undefined, why: string) => never,
): HaproxyRateLimit | undefined {
  if (denies.length === 0) return undefined;
  if (denies.length !== 2)
    fail(denies[0]!.line, `expected two rate-limit deny rules (base and burst), found ${denies.length}`);
  const resolved = denies.map((d) => {
    const t = tables.get(d.table);
    if (!t) return fail(d.line, `rate-limit rule refers to table '${d.table}', which no backend defines`);
    return { ...d, ...t };
  });
  // neutron names them base_rate_limiter / burst_rate_limiter; otherwise the first rule is the base one.
  let base = resolved.find((r) => /base/.test(r.table)) ?? resolved[0]!;
  let burst = resolved.find((r) => r !== base)!;
  if (/base/.test(burst.table) && !/base/.test(base.table)) [base, burst] = [burst, base];
  if (base.type !== burst.type)
    fail(burst.line, 'the two rate-limit tables have different types (ip and ipv6); neutron writes one type');
  return Object.freeze({
    ipVersion: base.type,
    baseWindow: base.window,
    baseLimit: base.limit,
    burstWindow: burst.window,
    burstLimit: burst.limit,
  });
}

function parseServer(args: readonly string[], l: Line): string {
  const addr = need(args, 1, l, "server needs a name and an address: 'server metadata /path/to/socket'");
  const path = addr.startsWith('unix@') ? addr.slice(5) : addr;
  if (!path.startsWith('/'))
    throw new HaproxyConfigError(
      '',
      l.no,
      `server address '${addr}' is not a UNIX socket path (must start with /)`,
    );
  return path;
}

/**
 * `bind 169.254.169.254:80`, `bind :::9697`, `bind 0.0.0.0:9697`, `bind [fe80::a9fe:a9fe]:80 interface tap0`,
 * `bind fe80::a9fe:a9fe:80 interface tap0` (pre-2026 form: the last colon separates the port).
 */
function parseBindLine(args: readonly string[], l: Line): HaproxyBind {
  const spec = need(args, 0, l, 'bind needs ADDRESS:PORT');
  if (spec.includes(','))
    throw new HaproxyConfigError('', l.no, `bind '${spec}': address lists are not supported`);
  let host: string;
  let portText: string;
  const bracket = /^\[([^\]]+)\]:(.*)$/.exec(spec);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2]!;
  } else {
    const colon = spec.lastIndexOf(':');
    if (colon === -1) throw new HaproxyConfigError('', l.no, `bind '${spec}': expected ADDRESS:PORT`);
    host = spec.slice(0, colon);
    portText = spec.slice(colon + 1);
  }
  if (host === '' || host === '*') host = '0.0.0.0';
  if (host.startsWith('ipv4@')) host = host.slice(5);
  if (host.startsWith('ipv6@')) host = host.slice(5);
  if (!/^\d+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
    throw new HaproxyConfigError('', l.no, `bind '${spec}': port must be a number 1-65535`);
  let iface: string | undefined;
  const pct = host.indexOf('%');
  if (pct !== -1) {
    iface = host.slice(pct + 1);
    host = host.slice(0, pct);
  }
  if (isIP(host) === 0)
    throw new HaproxyConfigError('', l.no, `bind '${spec}': '${host}' is not an IP address`);
  const ifAt = args.indexOf('interface');
  if (ifAt >= 0) iface = need(args, ifAt + 1, l, "'interface' needs a device name");
  if (iface !== undefined && !/^[A-Za-z0-9_.@-]{1,15}$/.test(iface))
    throw new HaproxyConfigError('', l.no, `bind '${spec}': bad interface name '${iface}'`);
  if (isIP(host) === 6 && /^fe[89ab]/i.test(host) && iface === undefined)
    throw new HaproxyConfigError(
      '',
      l.no,
      `bind '${spec}': a link-local IPv6 address needs 'interface <dev>'`,
    );
  return Object.freeze({
    host,
    port: Number(portText),
    ...(iface !== undefined ? { interface: iface } : {}),
  });
}
