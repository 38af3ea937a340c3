/*
 * The options both OVN programs read from neutron's neutron_ovn_metadata_agent.ini, with its names so that
 * file works unchanged: `[ovn] ovn_sb_connection` and its TLS files, `ovsdb_probe_interval`, `ovn_sb_leader`,
 * `ovn_chassis_name`, and `[ovs] ovsdb_connection` / `ovsdb_connection_timeout` (the local Open_vSwitch
 * database: the chassis name, and the provisioner's bridges and ports). The agent adds its resolver's own
 * (lookup scope, liveness) and the provisioner its [ovn_metadata] section; both turn the values into a
 * connection with southboundConnection() and localOvsFor().
 */
import { type ConfigOf, opt } from '@nmp/common';
import { parseRemotes, type TlsFiles } from '@nmp/ovsdb';
import type { LocalOvsOptions } from './local-ovs.js';
import type { SouthboundOptions } from './southbound.js';

function checkRemotes(value: string): string | undefined {
  if (value === '') return undefined;
  try {
    parseRemotes(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export const ovnSchema = {
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
  ovnSbLeader: opt.enum({
    name: 'ovn_sb_leader',
    group: 'ovn',
    default: 'prefer',
    choices: ['prefer', 'any', 'require'] as const,
    help: 'Which member of a clustered Southbound to stay on: prefer the leader (a follower when no leader answers), any member, or only the leader',
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
};

export type OvnConfig = ConfigOf<typeof ovnSchema>;

/** TLS files for the Southbound (undefined when none is set). */
export function southboundTls(
  c: Pick<OvnConfig, 'ovnSbPrivateKey' | 'ovnSbCertificate' | 'ovnSbCaCert'>,
): TlsFiles | undefined {
  if (c.ovnSbPrivateKey === '' && c.ovnSbCertificate === '' && c.ovnSbCaCert === '') return undefined;
  return {
    ...(c.ovnSbPrivateKey ? { privateKey: c.ovnSbPrivateKey } : {}),
    ...(c.ovnSbCertificate ? { certificate: c.ovnSbCertificate } : {}),
    ...(c.ovnSbCaCert ? { caCert: c.ovnSbCaCert } : {}),
  };
}

/** neutron's rule: 0 disables the probe, anything else is at least one second. */
export function probeIntervalMs(c: Pick<OvnConfig, 'ovnProbeInterval'>): number {
  return c.ovnProbeInterval === 0 ? 0 : Math.max(1000, c.ovnProbeInterval);
}

/** How to reach the Southbound, from the configuration (OvnSouthbound adds the chassis and what to keep). */
export function southboundConnection(
  c: OvnConfig,
): Pick<SouthboundOptions, 'remotes' | 'tls' | 'leader' | 'probeIntervalMs'> {
  const tls = southboundTls(c);
  return {
    remotes: c.ovnSbConnection,
    ...(tls ? { tls } : {}),
    leader: c.ovnSbLeader,
    probeIntervalMs: probeIntervalMs(c),
  };
}

/** How to reach the local Open_vSwitch database, from the configuration. */
export function localOvsConnection(
  c: Pick<OvnConfig, 'ovsConnection' | 'ovsTimeout'>,
): Pick<LocalOvsOptions, 'remote' | 'timeoutMs'> {
  return { remote: c.ovsConnection, timeoutMs: c.ovsTimeout * 1000 };
}
