/*
 * @nmp/nova-metadata-dev: a Nova-compatible metadata API (reference.md §7) to test the metadata-agent
 * against, to point cloud-init at, and to serve as the upstream in benchmarks.
 */
import { fileURLToPath } from 'node:url';

export { type Doc, sanitizeHostname } from './documents.js';
export {
  DEFAULT_EXPLANATIONS,
  type ErrorPage,
  type ErrorVariant,
  negotiateErrorVariant,
  renderErrorPage,
} from './error-pages.js';
export {
  MSG_BAD_SIGNATURE,
  MSG_NO_FORWARDED_FOR,
  MSG_NO_INSTANCE_ID,
  MSG_NO_SIGNATURE,
  MSG_NO_TENANT_ID,
  MSG_UNKNOWN_ERROR,
} from './identity.js';
export {
  type InstanceSpec,
  InstancesFileError,
  loadInstances,
  PASSWORD_MAX_BYTES,
  parseInstances,
} from './instances.js';
export { MSG_GET_AND_POST_ONLY, MSG_TOO_LARGE } from './password.js';
export { documentKey, normalisedPath, normpath, pathInfo } from './paths.js';
export { pythonJsonDumps } from './python-json.js';
export {
  createNovaMetadataServer,
  type NovaMetadataServer,
  type NovaMetadataServerOptions,
  type NovaMetadataStats,
  type RequestInfo,
} from './server.js';
export { EC2_VERSIONS, OPENSTACK_VERSIONS, visibleOpenStackVersions } from './versions.js';

/** The sample instances (A, B, C) shipped with the package. */
export const SAMPLE_INSTANCES_FILE = fileURLToPath(new URL('../../sample/instances.json', import.meta.url));
/** The Neutron port inventory matching the sample instances (for the metadata-agent's static resolver). */
export const SAMPLE_INVENTORY_FILE = fileURLToPath(new URL('../../sample/inventory.json', import.meta.url));
