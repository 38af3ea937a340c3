/*
 * @nmp/ovn-provisioner: ovnmeta-<network> namespaces on an OVN chassis, as neutron's OVN metadata agent
 * provisions them, served by our proxy. The CLI is `ovn-metadata-provisioner` (src/cli.ts).
 */

export { provisionerSchema } from './options.js';
