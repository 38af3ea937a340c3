/*
 * Every document an instance can be asked for, rendered once (reference.md §7.2): the OpenStack tree per
 * version (meta_data.json gated by version, listings, user_data, vendor data, network_data.json) and the
 * EC2 tree per version, walked like Nova's find_path_in_tree so that every reachable node (listings with
 * `/` for sub-dicts, `0=<key>` under public-keys/, leaves) has its bytes and headers ready. Only the
 * password and, without an IPv4 fixed IP, EC2 local-ipv4 depend on the request.
 */
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { InstanceSpec } from './instances.js';
import { pythonJsonDumps } from './python-json.js';
import {
  atLeast,
  EC2_VERSIONS,
  GRIZZLY,
  HAVANA,
  LIBERTY,
  NEWTON_ONE,
  NEWTON_TWO,
  OPENSTACK_VERSIONS,
  VICTORIA,
} from './versions.js';

export const TEXT_PLAIN_UTF8 = 'text/plain; charset=UTF-8';
export const TEXT_HTML_UTF8 = 'text/html; charset=UTF-8';
export const APPLICATION_JSON = 'application/json';

/** A finished response: status, header object built once, body. */
export interface Doc {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export function makeDoc(status: number, contentType: string, body: Buffer | string): Doc {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return {
    status,
    headers: Object.freeze({ 'Content-Type': contentType, 'Content-Length': String(buf.length) }),
    body: buf,
  };
}

/** Routes answered per request rather than from a rendered document. */
export type DynamicRoute = 'password' | 'local-ipv4';
export type Route = Doc | DynamicRoute;

/** Nova's ec2_md_print: how a node of the metadata tree is written out. */
type Tree = string | number | Buffer | null | readonly string[] | { readonly [k: string]: Tree };

function isDict(v: Tree): v is { readonly [k: string]: Tree } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

function printNode(data: Tree): Buffer | string {
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return data;
  if (data === null) return 'None';
  if (typeof data === 'number') return String(data);
  if (Array.isArray(data)) return data.join('\n');
  const dict = data as { readonly [k: string]: Tree };
  const lines: string[] = [];
  for (const key of Object.keys(dict).sort()) {
    if (key === '_name') continue;
    const child = dict[key]!;
    if (isDict(child)) lines.push('_name' in child ? String(child._name) : `${key}/`);
    else lines.push(key);
  }
  return lines.join('\n');
}

/** Nova's sanitize_hostname, for instances given without a hostname. */
export function sanitizeHostname(name: string, uuid: string): string {
  let h = name.slice(0, 63);
  h = h.replace(/[ _.]/g, '-');
  h = h.replace(/[^\w.-]+/g, '');
  h = h.toLowerCase().replace(/^[.-]+|[.-]+$/g, '');
  return h === '' ? `server-${uuid}`.slice(0, 63) : h;
}

export interface CompiledInstance {
  readonly spec: InstanceSpec;
  readonly uuid: string;
  readonly projectId: string;
  /** Canonical fixed IPs (for identification by peer address). */
  readonly fixedIps: readonly string[];
  readonly userData: Buffer | undefined;
  /** Document key (see paths.ts documentKey) -> route. */
  readonly routes: ReadonlyMap<string, Route>;
  /** The 512 random bytes of meta_data.json, base64; fixed for the life of the process. */
  readonly randomSeed: string;
}

export interface CompileOptions {
  /** `[api] dhcp_domain`: appended to a hostname that has no dot yet. Default `novalocal`. */
  readonly dhcpDomain?: string;
  /** 1-based position, used for the EC2 instance id `i-%08x`. */
  readonly ordinal: number;
  readonly canonicalIp: (ip: string) => string | undefined;
}

export function compileInstance(spec: InstanceSpec, options: CompileOptions): CompiledInstance {
  const domain = options.dhcpDomain ?? 'novalocal';
  const baseHostname = spec.hostname ?? sanitizeHostname(spec.name, spec.uuid);
  const hostname = domain === '' || baseHostname.includes('.') ? baseHostname : `${baseHostname}.${domain}`;
  const userData =
    spec.user_data !== undefined
      ? Buffer.from(spec.user_data, 'utf8')
      : spec.user_data_base64 !== undefined
        ? Buffer.from(spec.user_data_base64, 'base64')
        : undefined;
  const az = spec.availability_zone ?? 'nova';
  const launchIndex = spec.launch_index ?? 0;
  const keys = Object.entries(spec.public_keys ?? {});
  const randomSeed = randomBytes(512).toString('base64');
  const routes = new Map<string, Route>();

  // --- OpenStack tree ---
  const vendorData = spec.vendor_data ?? {};
  const vendorDoc = makeDoc(200, APPLICATION_JSON, pythonJsonDumps(vendorData));
  const vendor2: Record<string, unknown> = { static: vendorData };
  for (const [k, v] of Object.entries(spec.vendor_data2 ?? {})) if (!(k in vendor2)) vendor2[k] = v;
  const vendor2Doc = makeDoc(200, APPLICATION_JSON, pythonJsonDumps(vendor2));
  const networkDoc = makeDoc(200, TEXT_PLAIN_UTF8, pythonJsonDumps(spec.network_data ?? {}));
  const userDataDoc = userData ? makeDoc(200, TEXT_PLAIN_UTF8, userData) : undefined;
  const metaJsonByShape = new Map<string, Doc>();

  for (const name of [...OPENSTACK_VERSIONS, 'latest']) {
    const v = name === 'latest' ? OPENSTACK_VERSIONS[OPENSTACK_VERSIONS.length - 1]! : name;
    const at = (required: string) => atLeast(v, required, OPENSTACK_VERSIONS);
    const listing = ['meta_data.json'];
    if (userData) listing.push('user_data');
    if (at(GRIZZLY)) listing.push('password');
    if (at(HAVANA)) listing.push('vendor_data.json');
    if (at(LIBERTY)) listing.push('network_data.json');
    if (at(NEWTON_TWO)) listing.push('vendor_data2.json');
    const listingDoc = makeDoc(200, TEXT_PLAIN_UTF8, listing.join('\n'));
    routes.set(`openstack/${name}`, listingDoc);
    routes.set(`openstack/${name}/version`, listingDoc); // Nova routes the name `version` to the listing too

    // meta_data.json, in Nova's key order; only four shapes exist, so versions share buffers.
    const shape = [at(GRIZZLY), at(LIBERTY), at(NEWTON_ONE), at(VICTORIA)].join();
    let meta = metaJsonByShape.get(shape);
    if (!meta) {
      const md: Record<string, unknown> = { uuid: spec.uuid };
      if (spec.meta && Object.keys(spec.meta).length > 0) md.meta = spec.meta;
      if (keys.length > 0) {
        md.public_keys = Object.fromEntries(keys);
        md.keys = keys.map(([keyName, data]) => ({ name: keyName, type: 'ssh', data }));
      }
      md.hostname = hostname;
      md.name = spec.name;
      md.launch_index = launchIndex;
      md.availability_zone = az;
      if (at(GRIZZLY)) md.random_seed = randomSeed;
      if (at(LIBERTY)) md.project_id = spec.project_id;
      if (at(NEWTON_ONE)) md.devices = [];
      if (at(VICTORIA)) md.dedicated_cpus = [];
      meta = makeDoc(200, APPLICATION_JSON, pythonJsonDumps(md));
      metaJsonByShape.set(shape, meta);
    }
    routes.set(`openstack/${name}/meta_data.json`, meta);
    if (userDataDoc) routes.set(`openstack/${name}/user_data`, userDataDoc);
    if (at(GRIZZLY)) routes.set(`openstack/${name}/password`, 'password');
    if (at(HAVANA)) routes.set(`openstack/${name}/vendor_data.json`, vendorDoc);
    // Nova serves network_data.json for every version, although only 2015-10-15 and later list it.
    routes.set(`openstack/${name}/network_data.json`, networkDoc);
    if (at(NEWTON_TWO)) routes.set(`openstack/${name}/vendor_data2.json`, vendor2Doc);
  }

  // --- EC2 tree ---
  const fixedIps: string[] = [];
  for (const ip of spec.fixed_ips ?? []) {
    const c = options.canonicalIp(ip);
    if (c !== undefined) fixedIps.push(c);
  }
  // Nova's local-ipv4 is the first IPv4 fixed IP, else the address the request came from.
  const firstV4 = fixedIps.find((ip) => isIPv4(ip));
  const instanceId = `i-${options.ordinal.toString(16).padStart(8, '0')}`;
  const reservationId = spec.reservation_id ?? `r-${spec.uuid.replace(/-/g, '').slice(0, 8)}`;
  const docCache = new Map<string, Doc>(); // same text -> same Doc across versions

  for (const name of [...EC2_VERSIONS, 'latest']) {
    const v = name === 'latest' ? EC2_VERSIONS[EC2_VERSIONS.length - 1]! : name;
    const at = (required: string) => atLeast(v, required, EC2_VERSIONS);
    const md: Record<string, Tree> = {
      'ami-id': 'ami-00000001',
      'ami-launch-index': launchIndex,
      'ami-manifest-path': 'FIXME',
      'instance-id': instanceId,
      hostname,
      'local-ipv4': firstV4 ?? null, // null: the request's address, filled in per request
      'reservation-id': reservationId,
      'security-groups': spec.security_groups ?? ['default'],
    };
    if (keys.length > 0) {
      const pk: Record<string, Tree> = {};
      keys.forEach(([keyName, data], i) => {
        pk[String(i)] = { _name: `${i}=${keyName}`, 'openssh-key': data };
      });
      md['public-keys'] = pk;
    }
    if (at('2007-01-19')) {
      md['local-hostname'] = hostname;
      md['public-hostname'] = hostname;
      md['public-ipv4'] = '';
    }
    if (at('2007-08-29')) md['instance-type'] = spec.instance_type ?? 'm1.small';
    if (at('2007-12-15')) md['block-device-mapping'] = { ami: 'vda', root: '/dev/vda' };
    if (at('2008-02-01')) md.placement = { 'availability-zone': az };
    if (at('2008-09-01')) md['instance-action'] = 'none';
    const top: Record<string, Tree> = { 'meta-data': md };
    if (userData) top['user-data'] = userData;
    addTree(routes, docCache, `ec2/${name}`, top);
  }
  if (firstV4 === undefined) {
    for (const name of [...EC2_VERSIONS, 'latest'])
      routes.set(`ec2/${name}/meta-data/local-ipv4`, 'local-ipv4');
  }

  return {
    spec,
    uuid: spec.uuid,
    projectId: spec.project_id,
    fixedIps,
    userData,
    routes,
    randomSeed,
  };
}

function addTree(routes: Map<string, Route>, cache: Map<string, Doc>, key: string, node: Tree): void {
  const printed = printNode(node);
  let doc: Doc;
  if (typeof printed === 'string') {
    doc = cache.get(printed) ?? makeDoc(200, TEXT_PLAIN_UTF8, printed);
    cache.set(printed, doc);
  } else {
    doc = makeDoc(200, TEXT_PLAIN_UTF8, printed);
  }
  routes.set(key, doc);
  if (isDict(node)) {
    for (const [k, child] of Object.entries(node)) addTree(routes, cache, `${key}/${k}`, child);
  }
}

/** The version lists, as Nova prints them. */
export function versionListDoc(versions: readonly string[]): Doc {
  return makeDoc(200, TEXT_PLAIN_UTF8, versions.join('\n'));
}
