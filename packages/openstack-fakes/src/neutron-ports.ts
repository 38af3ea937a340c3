import type { NeutronPort } from '@nmp/common';
/*
 * The Neutron half of the fake: GET /v2.0/ports with Neutron's filter query syntax. A repeated key is an
 * OR over its values (`network_id=a&network_id=b`), different keys are ANDed, `fixed_ips=ip_address=X`
 * (also `subnet_id=`, `ip_address_substr=`) filters on the port's fixed IPs, `fields=` (repeatable)
 * trims the returned objects. An attribute that cannot be filtered on is a 400, as with Neutron's
 * filter validation on.
 */

/** A Neutron port as the API returns it: the agent's fields, and whatever extra attributes the fake is given. */
export interface FakePort extends NeutronPort {
  readonly [extra: string]: unknown;
}

export class NeutronError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }

  body(): string {
    return JSON.stringify({ NeutronError: { type: this.type, message: this.message, detail: '' } });
  }
}

const FILTERABLE = new Set([
  'id',
  'name',
  'network_id',
  'project_id',
  'tenant_id',
  'mac_address',
  'admin_state_up',
  'status',
  'device_id',
  'device_owner',
  'description',
  'binding:host_id',
  'binding:vnic_type',
  'ip_allocation',
]);
const PAGING = new Set(['limit', 'marker', 'sort_key', 'sort_dir', 'page_reverse']);
const FIXED_IP_KEYS = new Set(['ip_address', 'subnet_id', 'ip_address_substr']);

export interface PortQuery {
  /** attribute -> accepted values (OR) */
  readonly attributes: ReadonlyMap<string, readonly string[]>;
  /** fixed_ips sub-key -> accepted values; a port matches if one of its fixed IPs satisfies every sub-key */
  readonly fixedIps: ReadonlyMap<string, readonly string[]>;
  readonly fields: readonly string[];
}

/** Parse the query string of GET /v2.0/ports (without the leading "?"). Throws NeutronError on bad filters. */
export function parsePortQuery(search: string): PortQuery {
  const attributes = new Map<string, string[]>();
  const fixedIps = new Map<string, string[]>();
  const fields: string[] = [];
  for (const [key, value] of new URLSearchParams(search)) {
    if (key === 'fields') {
      fields.push(value);
    } else if (PAGING.has(key)) {
      // accepted, not modelled
    } else if (key === 'fixed_ips') {
      const eq = value.indexOf('=');
      const sub = eq === -1 ? '' : value.slice(0, eq);
      if (!FIXED_IP_KEYS.has(sub))
        throw new NeutronError(400, 'HTTPBadRequest', `Invalid input for fixed_ips: '${value}'`);
      push(fixedIps, sub, value.slice(eq + 1));
    } else if (FILTERABLE.has(key)) {
      push(attributes, key, value);
    } else {
      throw new NeutronError(400, 'HTTPBadRequest', `[${key}] is invalid attribute for filtering`);
    }
  }
  return { attributes, fixedIps, fields };
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export function portMatches(port: FakePort, q: PortQuery): boolean {
  for (const [attr, values] of q.attributes) {
    const v = port[attr];
    if (v === undefined || v === null) return false;
    const text = typeof v === 'boolean' ? String(v) : String(v);
    const ok =
      attr === 'mac_address'
        ? values.some((x) => x.toLowerCase() === text.toLowerCase())
        : attr === 'admin_state_up'
          ? values.some((x) => x.toLowerCase() === text.toLowerCase())
          : values.includes(text);
    if (!ok) return false;
  }
  if (q.fixedIps.size > 0) {
    const ips = port.fixed_ips ?? [];
    const anyIp = ips.some((f) => {
      for (const [sub, values] of q.fixedIps) {
        if (sub === 'ip_address' && !values.includes(f.ip_address)) return false;
        if (sub === 'subnet_id' && !values.includes(f.subnet_id ?? '')) return false;
        if (sub === 'ip_address_substr' && !values.some((s) => f.ip_address.includes(s))) return false;
      }
      return true;
    });
    if (!anyIp) return false;
  }
  return true;
}

/** The port as returned: all attributes, or only the requested fields. */
export function projectPort(port: FakePort, fields: readonly string[]): Record<string, unknown> {
  const full: Record<string, unknown> = {
    admin_state_up: true,
    status: 'ACTIVE',
    name: '',
    description: '',
    ...port,
  };
  if (port.project_id !== undefined && port.tenant_id === undefined) full.tenant_id = port.project_id;
  if (port.tenant_id !== undefined && port.project_id === undefined) full.project_id = port.tenant_id;
  if (fields.length === 0) return full;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (f in full) out[f] = full[f];
  return out;
}
