/*
 * Options of the OVN resolver, with the names of neutron's neutron_ovn_metadata_agent.ini so that file works
 * unchanged: `[ovn] ovn_sb_connection` and its TLS files, `[ovn] ovsdb_probe_interval` and
 * `ovsdb_connection_timeout`, `[ovs] ovsdb_connection` (the local Open_vSwitch database, for the chassis
 * name), `[DEFAULT] agent_down_time` (the spread of the liveness writes). What we add is in the same style.
 * Setting ovn_sb_connection is what selects this resolver (resolver = auto). The agent merges
 * `ovnResolverSchema` into its schema; `southboundOptions()` turns the loaded values into typed options.
 */
import { type ConfigOf, opt } from '@nmp/common';
import { parseRemotes, type TlsFiles } from '@nmp/ovsdb';

function checkRemotes(value: string): string | undefined {
  if (value === '') return undefined;
  try {
    parseRemotes(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export const ovnResolverSchema = {
  ovnSbConnection: opt.string({
    name: 'ovn_sb_connection',
    group: 'ovn',
    default: '',
    help: 'OVN Southbound database: tcp:IP:PORT, ssl:IP:PORT or unix:PATH, comma-separated for the members of a cluster; setting it selects the OVN resolver (resolver = auto)',
    check: checkRemotes,
  }),
  ovnSbPrivateKey: opt.string({
    name: 'ovn_sb_private_key',
    group: 'ovn',
    default: '',
    help: 'PEM private key for ssl: Southbound remotes (with ovn_sb_certificate)',
  }),
  ovnSbCertificate: opt.string({
    name: 'ovn_sb_certificate',
    group: 'ovn',
    default: '',
    help: 'PEM certificate of ovn_sb_private_key, presented to the Southbound server',
  }),
  ovnSbCaCert: opt.string({
    name: 'ovn_sb_ca_cert',
    group: 'ovn',
    default: '',
    help: "PEM CA certificate that signed the Southbound server's certificate (required for ssl:)",
  }),
  ovnProbeInterval: opt.int({
    name: 'ovsdb_probe_interval',
    group: 'ovn',
    default: 60000,
    min: 0,
    flag: 'ovn-ovsdb-probe-interval',
    help: 'Milliseconds of silence after which an echo probes the Southbound connection (0: never; at least 1000 otherwise)',
  }),
  ovnTransactionTimeout: opt.int({
    name: 'ovsdb_connection_timeout',
    group: 'ovn',
    default: 180,
    min: 1,
    flag: 'ovn-ovsdb-connection-timeout',
    help: 'Seconds a Southbound transaction (the liveness writes) may take',
  }),
  ovnSbLeader: opt.enum({
    name: 'ovn_sb_leader',
    group: 'ovn',
    default: 'prefer',
    choices: ['prefer', 'any', 'require'] as const,
    help: 'Which member of a clustered Southbound to stay on: prefer the leader (a follower when no leader answers), any member, or only the leader',
  }),
  ovnLookupScope: opt.enum({
    name: 'ovn_lookup_scope',
    group: 'ovn',
    default: 'chassis',
    choices: ['chassis', 'all'] as const,
    help: "Port_Bindings kept for lookups: those bound to this chassis (only its instances can reach its metadata port; the Southbound sends only those), or every bound one, as neutron's agent scans",
  }),
  ovnChassisName: opt.string({
    name: 'ovn_chassis_name',
    group: 'ovn',
    default: '',
    help: "This chassis' name; empty: external_ids:system-id of the local Open_vSwitch database ([ovs] ovsdb_connection), as neutron reads it",
  }),
  ovsConnection: opt.string({
    name: 'ovsdb_connection',
    group: 'ovs',
    default: 'unix:/var/run/openvswitch/db.sock',
    flag: 'ovs-ovsdb-connection',
    help: 'The local Open_vSwitch database (for the chassis name, and the provisioner: bridges and ports)',
    check: checkRemotes,
  }),
  ovsTimeout: opt.int({
    name: 'ovsdb_connection_timeout',
    group: 'ovs',
    default: 180,
    min: 1,
    flag: 'ovs-ovsdb-connection-timeout',
    help: 'Seconds a transaction on the local Open_vSwitch database may take',
  }),
  agentDownTime: opt.int({
    name: 'agent_down_time',
    default: 75,
    min: 1,
    help: "neutron-server's agent_down_time: liveness writes after the first are delayed by a random 0 to min(max(agent_down_time/3, 3), 10) seconds, as neutron's agent does",
  }),
};

export type OvnResolverConfig = ConfigOf<typeof ovnResolverSchema>;

/** TLS files for the Southbound (undefined when none is set). */
export function southboundTls(
  c: Pick<OvnResolverConfig, 'ovnSbPrivateKey' | 'ovnSbCertificate' | 'ovnSbCaCert'>,
): TlsFiles | undefined {
  if (c.ovnSbPrivateKey === '' && c.ovnSbCertificate === '' && c.ovnSbCaCert === '') return undefined;
  return {
    ...(c.ovnSbPrivateKey ? { privateKey: c.ovnSbPrivateKey } : {}),
    ...(c.ovnSbCertificate ? { certificate: c.ovnSbCertificate } : {}),
    ...(c.ovnSbCaCert ? { caCert: c.ovnSbCaCert } : {}),
  };
}

/** neutron's rule: 0 disables the probe, anything else is at least one second. */
export function probeIntervalMs(c: Pick<OvnResolverConfig, 'ovnProbeInterval'>): number {
  return c.ovnProbeInterval === 0 ? 0 : Math.max(1000, c.ovnProbeInterval);
}

/** The largest random delay of a liveness write, in seconds (neutron's SbGlobalUpdateEvent). */
export function livenessMaxDelaySeconds(agentDownTime: number): number {
  return Math.max(Math.min(Math.floor(agentDownTime / 3), 10), 3);
}
