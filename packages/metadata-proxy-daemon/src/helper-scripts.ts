/*
 * Where the scripts are that the daemon starts as processes of their own to open listening sockets inside a
 * namespace (netns/). Computed here, from a file at the top of src/, because a release bundles this package's
 * CLI into one file at the same place (dist/src/cli.js), where import.meta.url is the bundle's: from this
 * folder the relative paths are the same in the build tree and in a release. The release builder bundles the
 * scripts from these very paths (packages/release/src/layout.ts).
 */
import { fileURLToPath } from 'node:url';

/** The Node listener helper (netns_exec = ip | nsenter). */
export const HELPER_PATH = fileURLToPath(new URL('./netns/helper.js', import.meta.url));

/** The Node half of the batch helper (netns_exec = python). */
export const RELAY_PATH = fileURLToPath(new URL('./netns/batch-relay.js', import.meta.url));
