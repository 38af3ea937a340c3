/*
 * Option fragments that several programs read with one meaning. A schema spreads the fragment instead of
 * writing its own copy, so the name, default and help are written once, and docs/configuration.md
 * describes them once (scripts/docs.mjs recognises a fragment's definitions by identity and refers to
 * them from each program's section).
 */
import { opt } from './schema.js';

/** Logging: the agent, the proxy, the daemon (through the proxy's options) and the provisioner. */
export const loggingOptions = {
  debug: opt.bool({ name: 'debug', default: false, help: 'Log at debug level' }),
  logLevel: opt.enum({
    name: 'log_level',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const,
    help: 'Log level (debug=True wins)',
  }),
  logFile: opt.string({ name: 'log_file', default: '', help: 'Log to this file instead of stdout' }),
};

/**
 * neutron's state_path and the agent's socket below it, as every program on a neutron node names them:
 * the agent listens there, the hooks, the daemon and the provisioner point their proxies at it. (The
 * per-namespace proxy has no state_path: it is always started with the socket named, and keeps its own
 * option with a literal default.)
 */
export const stateOptions = {
  statePath: opt.string({
    name: 'state_path',
    default: '/var/lib/neutron',
    help: 'Where neutron keeps its state',
  }),
  socketPath: opt.string({
    name: 'metadata_proxy_socket',
    default: '$state_path/metadata_proxy',
    help: "The metadata agent's UNIX socket the proxies forward to",
  }),
};

/**
 * `admin_socket`: the admin listener's UNIX socket. Its default differs by program on purpose (the agent's
 * sits beside its own socket; a proxy runs once per namespace, so it has none unless one is named), so
 * this is one definition with the default and the sentence that explains it given by the program.
 */
export function adminSocketOption(o: { readonly default: string; readonly where: string }) {
  return opt.string({
    name: 'admin_socket',
    default: o.default,
    help: `UNIX socket (mode 0600) serving /metrics, /healthz and /readyz${o.where}`,
  });
}
