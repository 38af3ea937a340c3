/*
 * GET /v2.0/ports against Neutron with the shared Keystone token. A 401 means the token died early
 * (revoked, Keystone restarted with new keys): the token is dropped, one re-authentication is made
 * (shared by every lookup that saw the same 401) and the request is retried once. Anything else that is
 * not a 200 with {"ports": [...]} is MDA_ERR_RESOLVER_UNAVAILABLE (503 to the instance).
 */

import type { NeutronPort } from '@nmp/common';
import { type KeystoneClient, scrub } from './keystone-session.js';
import { type UpstreamHttp, unavailable } from './upstream-http.js';

/** Port attributes the agent needs; asking for only these keeps Neutron's answer and work small. */
export const PORT_FIELDS: readonly string[] = [
  'id',
  'network_id',
  'mac_address',
  'fixed_ips',
  'device_id',
  'device_owner',
  'project_id',
  'tenant_id',
];

/** Neutron list filters: a repeated name is an OR over its values. */
export type PortFilters = ReadonlyArray<readonly [name: string, value: string]>;

export interface PortClientStats {
  readonly requests: number;
  readonly reauthentications: number;
}

export class NeutronPortClient {
  readonly #http: UpstreamHttp;
  readonly #keystone: KeystoneClient;
  #requests = 0;
  #reauthentications = 0;

  constructor(http: UpstreamHttp, keystone: KeystoneClient) {
    this.#http = http;
    this.#keystone = keystone;
  }

  get stats(): PortClientStats {
    return { requests: this.#requests, reauthentications: this.#reauthentications };
  }

  /** The ports matching `filters`, limited to `fields` (PORT_FIELDS by default). */
  async list(
    filters: PortFilters,
    deadline: number,
    fields: readonly string[] = PORT_FIELDS,
  ): Promise<NeutronPort[]> {
    const params = new URLSearchParams();
    for (const [k, v] of filters) params.append(k, v);
    for (const f of fields) params.append('fields', f);
    const query = params.toString();

    let session = await this.#keystone.session(deadline);
    let res = await this.#get(session.networkApi, session.token, query, deadline);
    if (res.status === 401) {
      this.#keystone.invalidate(session.token);
      this.#reauthentications++;
      session = await this.#keystone.session(deadline);
      res = await this.#get(session.networkApi, session.token, query, deadline);
    }
    const started = Date.now();
    const where = { upstream: 'neutron', url: `${session.networkApi.href}/ports`, status: res.status };
    if (res.status !== 200) {
      const reason =
        res.status === 401
          ? 'token refused twice'
          : res.status === 403
            ? "forbidden: the [neutron] user needs a role allowed to read every project's ports (see docs/neutron.md)"
            : res.status >= 500
              ? 'neutron error'
              : 'request rejected';
      throw unavailable(
        { ...where, neutronMessage: neutronMessage(res.body, session.token) },
        reason,
        started,
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(res.body);
    } catch {
      throw unavailable(where, 'ports answer is not JSON', started);
    }
    const ports = (doc as { ports?: unknown })?.ports;
    if (!Array.isArray(ports)) throw unavailable(where, 'ports answer has no "ports" list', started);
    return ports as NeutronPort[];
  }

  #get(api: URL, token: string, query: string, deadline: number) {
    this.#requests++;
    const url = new URL(`${api.href}/ports?${query}`);
    return this.#http.request(
      'neutron',
      url,
      { method: 'GET', headers: { 'x-auth-token': token, accept: 'application/json' } },
      deadline,
    );
  }
}

/** Neutron's error message for the log (NeutronError or keystonemiddleware shape), token scrubbed. */
function neutronMessage(body: string, token: string): string | undefined {
  let doc: { NeutronError?: { message?: unknown }; error?: { message?: unknown } };
  try {
    doc = JSON.parse(body);
  } catch {
    return undefined;
  }
  const msg = doc?.NeutronError?.message ?? doc?.error?.message;
  return typeof msg === 'string' ? scrub(msg.slice(0, 300), [token]) : undefined;
}
