/*
 * @nmp/release: builds what operators install (docs/release.md): the Debian package and the relocatable
 * tarball, each with the programs bundled, their own Node.js runtime, units, man pages and example
 * configuration, and SHA256SUMS. Not shipped itself.
 */

export {
  buildRelease,
  DEFAULT_MAINTAINER,
  PROGRAM_SCHEMAS,
  type ReleaseArtefacts,
  type ReleaseOptions,
  statePaths,
} from './build.js';
export { type BundledModule, bundlePrograms } from './bundle.js';
export { checkDebianVersion, controlFile, copyrightFile, md5sums } from './debian.js';
export { sampleIni } from './examples.js';
export { DEB_PREFIX, entryPoints, PROGRAMS, type ProgramSpec, REPO_ROOT } from './layout.js';
export { parseHelp, renderManPage, roff } from './manpages.js';
export { checkNodeVersion, findNodeLicense } from './runtime.js';
export { listFiles, normalizeTree } from './tree.js';
export { haproxyWrapper, programWrapper } from './wrappers.js';
