/*
 * @nmp/nova-metadata-dev: a Nova-compatible metadata API (reference.md §7) to test the metadata-agent
 * against, to point cloud-init at, and to serve as the upstream in benchmarks.
 */
import { fileURLToPath } from 'node:url';

export { loadInstances, parseInstances } from './instances.js';
export { createNovaMetadataServer, type NovaMetadataServerOptions, type RequestInfo } from './server.js';

/** The sample instances (A, B, C) shipped with the package. */
export const SAMPLE_INSTANCES_FILE = fileURLToPath(new URL('../../sample/instances.json', import.meta.url));
/** The Neutron port inventory matching the sample instances (for the metadata-agent's static resolver). */
export const SAMPLE_INVENTORY_FILE = fileURLToPath(new URL('../../sample/inventory.json', import.meta.url));
