/*
 * @nmp/metadata-agent: the node agent between the proxies' UNIX socket and Nova's metadata API.
 */

export { MetadataAgent } from './agent.js';
export { createNeutronResolver } from './neutron/index.js';
export { AGENT_COMPAT, agentSchema } from './options.js';
export { OvnMetadataService } from './ovn/ovn-service.js';
export { LIVE_OPTIONS, NEUTRON_CREDENTIAL_OPTIONS } from './reload.js';
export { InventoryResolver } from './resolver/inventory-resolver.js';
export { chooseResolver } from './resolver-factory.js';
export { createRpcResolver } from './rpc/index.js';
