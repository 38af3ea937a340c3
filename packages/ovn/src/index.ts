/*
 * @nmp/ovn: what metadata-agent (its OVN resolver) and ovn-metadata-provisioner share of OVN: the options
 * they read from neutron's OVN metadata agent file, the Southbound connection with this chassis' monitor, the
 * local Open_vSwitch database, and how neutron reads a Port_Binding. Loads @nmp/ovsdb and nothing of either
 * program.
 */
export { LocalOvs } from './local-ovs.js';
export {
  localOvsConnection,
  ovnSchema,
  probeIntervalMs,
  southboundConnection,
  southboundTls,
} from './options.js';
export {
  addressesOf,
  EXT_CIDRS,
  EXT_DEVICE_ID,
  EXT_DEVICE_OWNER,
  EXT_MTU,
  EXT_PROJECT_ID,
  externalId,
  networkOfDatapath,
} from './port-binding.js';
export {
  type LookupScope,
  METADATA_ID_KEY,
  METADATA_SB_CFG_KEY,
  OvnSouthbound,
  type SouthboundIndex,
} from './southbound.js';
