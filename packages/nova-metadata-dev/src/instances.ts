/*
 * The instances the development Nova knows, read from a JSON file (format in the package README) and
 * validated once at load: every problem names the instance by index and the field, so a typo in a test
 * fixture fails loudly instead of turning into a puzzling 404.
 */
import { readFileSync } from 'node:fs';
import { canonicalIp, type ProgramErrorCode } from '@nmp/common';

/** One instance as written in the instances file. */
export interface InstanceSpec {
  readonly uuid: string;
  readonly project_id: string;
  readonly name: string;
  readonly hostname?: string;
  readonly availability_zone?: string;
  readonly launch_index?: number;
  /** Keypairs by name; Nova's API attaches one, more are accepted and listed. */
  readonly public_keys?: Readonly<Record<string, string>>;
  /** Instance metadata (`meta` in meta_data.json); values are strings as in Nova. */
  readonly meta?: Readonly<Record<string, string>>;
  /** User data as UTF-8 text. */
  readonly user_data?: string;
  /** User data as base64 (binary, gzip). Mutually exclusive with user_data. */
  readonly user_data_base64?: string;
  /** The StaticJSON vendor data: vendor_data.json, and `static` in vendor_data2.json. */
  readonly vendor_data?: Readonly<Record<string, unknown>>;
  /** DynamicJSON results by target name, merged after `static` into vendor_data2.json. */
  readonly vendor_data2?: Readonly<Record<string, unknown>>;
  /** network_data.json as is (`links`, `networks`, `services`); `{}` when absent. */
  readonly network_data?: Readonly<Record<string, unknown>>;
  /** Fixed IPs: identification by peer address (service_metadata_proxy off) and EC2 local-ipv4. */
  readonly fixed_ips?: readonly string[];
  readonly instance_type?: string;
  readonly reservation_id?: string;
  readonly security_groups?: readonly string[];
  /** A password already stored (as if POSTed); the password document then answers 409 to POST. */
  readonly password?: string;
}

export class InstancesFileError extends Error {
  readonly code = 'NMP_ERR_INSTANCES_FILE' satisfies ProgramErrorCode;
  constructor(message: string) {
    super(message);
    this.name = 'InstancesFileError';
  }
}

const FIELDS: ReadonlySet<string> = new Set([
  'uuid',
  'project_id',
  'name',
  'hostname',
  'availability_zone',
  'launch_index',
  'public_keys',
  'meta',
  'user_data',
  'user_data_base64',
  'vendor_data',
  'vendor_data2',
  'network_data',
  'fixed_ips',
  'instance_type',
  'reservation_id',
  'security_groups',
  'password',
]);

/** Nova's password store holds 4 chunks of 255 characters; POST refuses more than 1020 bytes. */
export const PASSWORD_MAX_BYTES = 1020;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Validate parsed JSON; `source` names the file in messages. */
export function parseInstances(data: unknown, source = 'instances'): InstanceSpec[] {
  if (!isPlainObject(data) || !Array.isArray(data.instances)) {
    throw new InstancesFileError(`${source}: expected an object with an "instances" array`);
  }
  const extra = Object.keys(data).filter((k) => k !== 'instances');
  if (extra.length > 0) throw new InstancesFileError(`${source}: unknown top-level field "${extra[0]}"`);
  const seen = new Map<string, number>();
  return data.instances.map((raw: unknown, i: number) => {
    const spec = parseInstance(raw, `${source}: instances[${i}]`);
    const first = seen.get(spec.uuid);
    if (first !== undefined) {
      throw new InstancesFileError(
        `${source}: instances[${i}].uuid: "${spec.uuid}" is already used by instances[${first}]`,
      );
    }
    seen.set(spec.uuid, i);
    return spec;
  });
}

function parseInstance(raw: unknown, where: string): InstanceSpec {
  if (!isPlainObject(raw)) throw new InstancesFileError(`${where}: expected an object, got ${describe(raw)}`);
  for (const k of Object.keys(raw)) {
    if (!FIELDS.has(k)) throw new InstancesFileError(`${where}: unknown field "${k}"`);
  }
  const fail = (field: string, why: string): never => {
    throw new InstancesFileError(`${where}.${field}: ${why}`);
  };
  const str = (field: string, required: boolean, nonEmpty = true): string | undefined => {
    const v = raw[field];
    if (v === undefined) return required ? fail(field, 'is required') : undefined;
    if (typeof v !== 'string') return fail(field, `expected a string, got ${describe(v)}`);
    if (nonEmpty && v === '') return fail(field, 'must not be empty');
    return v;
  };
  const stringMap = (field: string): Record<string, string> | undefined => {
    const v = raw[field];
    if (v === undefined) return undefined;
    if (!isPlainObject(v)) return fail(field, `expected an object, got ${describe(v)}`);
    for (const [k, val] of Object.entries(v)) {
      if (typeof val !== 'string') fail(`${field}.${k}`, `expected a string, got ${describe(val)}`);
    }
    return v as Record<string, string>;
  };
  const object = (field: string): Record<string, unknown> | undefined => {
    const v = raw[field];
    if (v === undefined) return undefined;
    if (!isPlainObject(v)) return fail(field, `expected an object, got ${describe(v)}`);
    return v;
  };
  const stringList = (field: string): string[] | undefined => {
    const v = raw[field];
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) return fail(field, `expected an array, got ${describe(v)}`);
    v.forEach((item, j) => {
      if (typeof item !== 'string' || item === '')
        fail(`${field}[${j}]`, `expected a non-empty string, got ${describe(item)}`);
    });
    return v as string[];
  };

  const uuid = str('uuid', true)!;
  if (/[\s/]/.test(uuid)) fail('uuid', 'must not contain whitespace or "/"');
  const spec: Record<string, unknown> = {
    uuid,
    project_id: str('project_id', true)!,
    name: str('name', true, false)!,
  };
  const hostname = str('hostname', false);
  if (hostname !== undefined) spec.hostname = hostname;
  const az = str('availability_zone', false);
  if (az !== undefined) spec.availability_zone = az;
  if (raw.launch_index !== undefined) {
    const li = raw.launch_index;
    if (typeof li !== 'number' || !Number.isInteger(li) || li < 0)
      fail('launch_index', 'expected a non-negative integer');
    spec.launch_index = li;
  }
  const keys = stringMap('public_keys');
  if (keys !== undefined) {
    for (const name of Object.keys(keys)) if (name === '') fail('public_keys', 'key names must not be empty');
    spec.public_keys = keys;
  }
  const meta = stringMap('meta');
  if (meta !== undefined) spec.meta = meta;
  if (raw.user_data !== undefined && raw.user_data_base64 !== undefined)
    fail('user_data_base64', 'give either user_data or user_data_base64, not both');
  const ud = str('user_data', false, false);
  if (ud !== undefined) spec.user_data = ud;
  const ud64 = str('user_data_base64', false, false);
  if (ud64 !== undefined) {
    if (!BASE64.test(ud64)) fail('user_data_base64', 'is not valid base64 (standard alphabet, padded)');
    spec.user_data_base64 = ud64;
  }
  for (const field of ['vendor_data', 'vendor_data2', 'network_data']) {
    const v = object(field);
    if (v !== undefined) spec[field] = v;
  }
  const ips = stringList('fixed_ips');
  if (ips !== undefined) {
    ips.forEach((ip, j) => {
      if (canonicalIp(ip) === undefined) fail(`fixed_ips[${j}]`, `"${ip}" is not an IP address`);
    });
    spec.fixed_ips = ips;
  }
  for (const field of ['instance_type', 'reservation_id']) {
    const v = str(field, false);
    if (v !== undefined) spec[field] = v;
  }
  const groups = stringList('security_groups');
  if (groups !== undefined) spec.security_groups = groups;
  const password = str('password', false, false);
  if (password !== undefined) {
    if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES)
      fail('password', `is longer than ${PASSWORD_MAX_BYTES} bytes`);
    spec.password = password;
  }
  return spec as unknown as InstanceSpec;
}

/** Read and validate an instances file. Throws InstancesFileError naming the file, instance and field. */
export function loadInstances(file: string): InstanceSpec[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new InstancesFileError(`cannot read instances file ${file}: ${code}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new InstancesFileError(`instances file ${file}: invalid JSON: ${(err as Error).message}`);
  }
  return parseInstances(data, file);
}
