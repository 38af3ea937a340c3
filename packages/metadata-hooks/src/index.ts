/*
 * @nmp/metadata-hooks: plumbing of instance metadata on a network node (DHCP and router namespaces,
 * iptables, proxy supervision) and the systemd units. The CLI is `metadata-hooks` (src/cli.ts). Commands,
 * namespace addresses and the proxy process manager are @nmp/host's.
 */

export { applyHopLimitRules, TOKEN_ANSWER_MARK } from './hop-limit-rules.js';
export { haproxyCompatOptions, hooksOptions } from './options.js';
export { PROGRAM_PACKAGES, type ProgramName, renderUnits } from './systemd-units.js';
