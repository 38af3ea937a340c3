/*
 * The production resolver: asks Neutron which port owns the source address (reference.md §3.3, over the
 * REST API instead of RPC).
 *   network mode: GET /v2.0/ports?network_id=<id>&fixed_ips=ip_address=<ip>   (mac_address=<mac> for
 *                 link-local IPv6)
 *   router mode:  the router's interface ports (device_id=<router>, device_owner=<router interface
 *                 owners>) give its networks - cached for router_cache_ttl - then the same port query over
 *                 all of those networks.
 * The lookup itself (router networks cached, answers re-checked, pickPort's rule, one log line per outage)
 * is PortResolver's, shared with the RPC resolver; this file says how the questions go over REST.
 *
 * Every lookup has one deadline (the configured timeout) covering the token, the router and the port
 * calls, so a slow Neutron costs the instance at most that long before a 503.
 */
import { type Logger, type LookupQuery, type NeutronPort, ROUTER_INTERFACE_OWNERS } from '@nmp/common';
import {
  PortResolver,
  type PortResolverSettings,
  type PortResolverStats,
  type PortSource,
} from '../resolver/port-resolver.js';
import {
  isUnavailable,
  type KeystoneAuthOptions,
  type KeystoneClient,
  type ReloadAction,
} from './keystone-session.js';
import type { NeutronPortClient, PortFilters } from './port-client.js';
import type { UpstreamHttp } from './upstream-http.js';

export type NeutronResolverSettings = PortResolverSettings;

export interface NeutronResolverStats extends PortResolverStats {
  readonly tokensIssued: number;
  /** Keystone logins that gave no token (refused or failed). */
  readonly authFailures: number;
  readonly reauthentications: number;
}

const ROUTER_FIELDS: readonly string[] = ['network_id'];

/**
 * Failures that reached nothing (upstream-http.ts' reasons): Keystone or Neutron is known unreachable
 * until a lookup gets through, and lookups meanwhile fail fast. A timeout on an open connection is not
 * one: a slow server still gets the whole deadline.
 */
const UNREACHABLE_REASONS: ReadonlySet<string> = new Set([
  'unreachable',
  'connect timeout',
  'name resolution',
  'tls',
]);

/** GET /v2.0/ports with neutron's list filters (a repeated name is an OR over its values). */
class RestPortSource implements PortSource {
  readonly #http: UpstreamHttp;
  readonly #ports: NeutronPortClient;

  constructor(http: UpstreamHttp, ports: NeutronPortClient) {
    this.#http = http;
    this.#ports = ports;
  }

  portsWithAddress(
    query: LookupQuery,
    networks: readonly string[],
    deadline: number,
  ): Promise<NeutronPort[]> {
    const filters: Array<readonly [string, string]> = networks.map((n) => ['network_id', n] as const);
    if (query.mac !== undefined) filters.push(['mac_address', query.mac]);
    else filters.push(['fixed_ips', `ip_address=${query.ip}`]);
    return this.#ports.list(filters, deadline);
  }

  routerInterfaces(router: string, deadline: number): Promise<NeutronPort[]> {
    const filters: PortFilters = [
      ['device_id', router],
      ...ROUTER_INTERFACE_OWNERS.map((o) => ['device_owner', o] as const),
    ];
    return this.#ports.list(filters, deadline, ROUTER_FIELDS);
  }

  close(): Promise<void> {
    return this.#http.close();
  }
}

export class NeutronResolver extends PortResolver {
  readonly #keystone: KeystoneClient;
  readonly #ports: NeutronPortClient;

  constructor(
    http: UpstreamHttp,
    keystone: KeystoneClient,
    ports: NeutronPortClient,
    settings: NeutronResolverSettings,
    log: Logger,
  ) {
    super(new RestPortSource(http, ports), settings, log, {
      isOutage: isUnavailable,
      isUnreachable: (err) => UNREACHABLE_REASONS.has(err.details.reason as string),
      upstream: 'neutron',
      downMessage: 'neutron lookups failing; instances get 503 until it recovers',
      upMessage: 'neutron lookups working again',
    });
    this.#keystone = keystone;
    this.#ports = ports;
  }

  override get stats(): NeutronResolverStats {
    const keystone = this.#keystone.stats;
    return {
      ...super.stats,
      tokensIssued: keystone.tokensIssued,
      authFailures: keystone.authFailures,
      reauthentications: this.#ports.stats.reauthentications,
    };
  }

  /** SIGHUP: the [neutron] credentials as reloaded (checked complete); see KeystoneClient.reload. */
  reloadCredentials(auth: KeystoneAuthOptions): ReloadAction {
    return this.#keystone.reload(auth);
  }
}
