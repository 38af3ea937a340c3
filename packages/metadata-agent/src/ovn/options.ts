/*
 * Options of the OVN resolver, with the names of neutron's neutron_ovn_metadata_agent.ini so that file works
 * unchanged: the Southbound and local Open_vSwitch options both OVN programs read (@nmp/ovn's ovnSchema), and
 * the resolver's own: `[ovn] ovsdb_connection_timeout` (the liveness writes), `ovn_lookup_scope`, and
 * `[DEFAULT] agent_down_time` (the spread of the liveness writes). What we add is in the same style.
 * Setting ovn_sb_connection is what selects this resolver (resolver = auto). The agent merges
 * `ovnResolverSchema` into its schema.
 */
import { type ConfigOf, opt } from '@nmp/common';
import { ovnSchema } from '@nmp/ovn';

// In the order of neutron's file, which is the order of the generated reference.
export const ovnResolverSchema = {
  ovnSbConnection: ovnSchema.ovnSbConnection,
  ovnSbPrivateKey: ovnSchema.ovnSbPrivateKey,
  ovnSbCertificate: ovnSchema.ovnSbCertificate,
  ovnSbCaCert: ovnSchema.ovnSbCaCert,
  ovnProbeInterval: ovnSchema.ovnProbeInterval,
  ovnTransactionTimeout: opt.int({
    name: 'ovsdb_connection_timeout',
    group: 'ovn',
    default: 180,
    min: 1,
    flag: 'ovn-ovsdb-connection-timeout',
    help: 'Seconds a Southbound transaction (the liveness writes) may take',
  }),
  ovnSbLeader: ovnSchema.ovnSbLeader,
  ovnLookupScope: opt.enum({
    name: 'ovn_lookup_scope',
    group: 'ovn',
    default: 'chassis',
    choices: ['chassis', 'all'] as const,
    help: "Port_Bindings kept for lookups: those bound to this chassis (only its instances can reach its metadata port; the Southbound sends only those), or every bound one, as neutron's agent scans",
  }),
  ovnChassisName: ovnSchema.ovnChassisName,
  ovsConnection: ovnSchema.ovsConnection,
  ovsTimeout: ovnSchema.ovsTimeout,
  agentDownTime: opt.int({
    name: 'agent_down_time',
    default: 75,
    min: 1,
    help: "neutron-server's agent_down_time: liveness writes after the first are delayed by a random 0 to min(max(agent_down_time/3, 3), 10) seconds, as neutron's agent does",
  }),
};

export type OvnResolverConfig = ConfigOf<typeof ovnResolverSchema>;

/** The largest random delay of a liveness write, in seconds (neutron's SbGlobalUpdateEvent). */
export function livenessMaxDelaySeconds(agentDownTime: number): number {
  return Math.max(Math.min(Math.floor(agentDownTime / 3), 10), 3);
}
