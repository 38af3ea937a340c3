/*
 * @nmp/ovn-provisioner: ovnmeta-<network> namespaces on an OVN chassis, as neutron's OVN metadata agent
 * provisions them, served by our proxy. The CLI is `ovn-metadata-provisioner` (src/cli.ts).
 */
export {
  isLocalVif,
  linkLocalOf,
  METADATA_DEVICE_OWNER,
  type MetadataPort,
  NETWORK_ID_RE,
  type NetworkPlan,
  type NetworkSpec,
  pickMetadataPort,
  planNetwork,
  VIF_TYPES,
  vethNames,
} from './desired-state.js';
export {
  PROVISIONER_COMPAT,
  type ProvisionerConfig,
  provisionerOwnOptions,
  provisionerSchema,
} from './options.js';
export { OvsPorts } from './ovs-ports.js';
export {
  type NetworkState,
  type NetworkStatus,
  OvnProvisioner,
  type ProvisionerOptions,
} from './provisioner.js';
export {
  DaemonLauncher,
  ProcessLauncher,
  type ProcessLauncherOptions,
  type ProxyLauncher,
  type ServeSpec,
} from './proxy-launcher.js';
