/*
 * The command line that starts ns-metadata-proxy for one namespace, as the hooks (a qdhcp or qrouter
 * namespace) and the provisioner (an ovnmeta namespace, proxy_mode = process) start it: the program, its
 * listening addresses, the id it stamps, the agent's socket, its pid file, the user and group it drops to,
 * and extra configuration files.
 */
import { fileURLToPath } from 'node:url';
import { type IdentityMode, type ProxyIdentity, SERVICE_NODE_FLAGS } from '@nmp/common';

/**
 * The ns-metadata-proxy CLI of this tree. Relative to this file, which is at the same depth below packages/
 * as every program's CLI, so the path holds in a release bundle too (where import.meta.url is the bundle's).
 */
export const PROXY_CLI = fileURLToPath(
  new URL('../../../ns-metadata-proxy/dist/src/cli.js', import.meta.url),
);

/** The proxy's flag for each kind of id it stamps. */
const ID_FLAG: Readonly<Record<IdentityMode, string>> = {
  network: '--network-id',
  router: '--router-id',
  ovn: '--ovn-network-id',
};

/**
 * The program that runs the proxy: `command` (a configured one), else the one installed beside us; a
 * script runs under this node with the services' node flags, anything else is executed as it is.
 */
export function proxyProgram(command = ''): string[] {
  const path = command !== '' ? command : PROXY_CLI;
  return /\.(c|m)?js$/.test(path) ? [process.execPath, ...SERVICE_NODE_FLAGS, path] : [path];
}

export interface ProxyCommandSpec {
  /** The configured program ('' or absent: the one beside us). */
  readonly command?: string;
  /** As the proxy's --bind takes them. */
  readonly binds: readonly string[];
  readonly identity: ProxyIdentity;
  readonly socketPath: string;
  readonly pidFile: string;
  /** Dropped to after binding ('' or absent: stay). */
  readonly user?: string;
  readonly group?: string;
  readonly configFiles?: readonly string[];
}

/** The proxy's full argv. */
export function proxyArgv(s: ProxyCommandSpec): string[] {
  return [
    ...proxyProgram(s.command),
    ...s.binds.flatMap((b) => ['--bind', b]),
    ID_FLAG[s.identity.mode],
    s.identity.id,
    '--metadata-proxy-socket',
    s.socketPath,
    '--pid-file',
    s.pidFile,
    ...(s.user ? ['--metadata-proxy-user', s.user] : []),
    ...(s.group ? ['--metadata-proxy-group', s.group] : []),
    ...(s.configFiles ?? []).flatMap((f) => ['--config-file', f]),
  ];
}
