/*
 * @nmp/release: builds what operators install (docs/release.md): the Debian package and the relocatable
 * tarball, each with the programs bundled, their own Node.js runtime, units, man pages and example
 * configuration, and SHA256SUMS. Not shipped itself.
 */

export { buildRelease, PROGRAM_SCHEMAS } from './build.js';
export { PROGRAMS } from './layout.js';
