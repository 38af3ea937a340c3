/*
 * Everything the agent does with its configuration, built once from the loaded (frozen) config: times in
 * milliseconds (fields named ...Ms), the files the configuration names read (Nova's CA and client
 * certificate and key, [neutron] cafile, the broker's TLS files), the checks that span options (which
 * resolver, complete credentials, EXTERNAL login with a client certificate), and the resolver's own
 * settings (rpc/settings.ts, neutron/settings.ts, with the resolver-wide ones of resolver/settings.ts).
 * The result is one deeply frozen tree; the CLI starts from it and a SIGHUP reload builds it again from the
 * re-read files (reload.ts), so a configuration that could not start cannot be applied either.
 *
 * Failures are ConfigErrors naming the option ("nova_client_cert /x: cannot read: ENOENT"): at start the
 * CLI prints them as it prints any configuration error (exit status 2); a reload logs them as
 * MDA_CONFIG_RELOAD_FAILED and keeps the running configuration. Nothing here opens a connection or a
 * socket, and the files the resolvers keep reading while they run (the inventory, re-read on SIGHUP; the OVN
 * certificates, read at every connection so renewed ones are used) are theirs.
 */
import { userInfo } from 'node:os';
import { ConfigError } from '@nmp/common';
import { deepFreeze, readConfigFile } from './config-file.js';
import type { NeutronResolverOptions } from './neutron/create.js';
import { neutronSettings } from './neutron/settings.js';
import type { NovaClientOptions } from './nova-client.js';
import { socketModeFor } from './options.js';
import type { OvnResolverConfig } from './ovn/options.js';
import type { AgentConfig } from './reload.js';
import type { CachingResolverOptions } from './resolver/caching-resolver.js';
import { resolverWideSettings } from './resolver/settings.js';
import { chooseResolver } from './resolver-factory.js';
import { type ConfigWarning, type RpcSettings, rpcSettings } from './rpc/settings.js';

export type { ConfigWarning } from './rpc/settings.js';

/** Longest a readiness probe may take (ms). */
export const PROBE_TIMEOUT_MS = 5000;

/** Where ports are looked up, with what that resolver needs. */
export type ResolverSettings =
  | { readonly kind: 'inventory'; readonly reason: string; readonly inventoryFile: string }
  | { readonly kind: 'ovn'; readonly reason: string; readonly ovn: OvnResolverConfig }
  | {
      readonly kind: 'rpc';
      readonly reason: string;
      readonly cache: CachingResolverOptions;
      readonly rpc: RpcSettings;
    }
  | {
      readonly kind: 'neutron';
      readonly reason: string;
      readonly cache: CachingResolverOptions;
      readonly neutron: NeutronResolverOptions;
    };

export interface AgentSettings {
  /** The proxies' UNIX socket. */
  readonly socket: {
    readonly path: string;
    /** 0644/0664/0666, as neutron deduces it from metadata_proxy_user/group. */
    readonly mode: number;
    readonly backlog: number;
  };
  readonly maxBodySize: number;
  readonly sharedSecret: string;
  /** Nova's metadata API: the files read, the timeout in ms. */
  readonly nova: NovaClientOptions;
  readonly log: { readonly level: string; readonly file: string };
  /** /metrics, /healthz, /readyz: a UNIX socket ('' = none) and a loopback address ('' = none). */
  readonly admin: { readonly socketPath: string; readonly bind: string };
  readonly readiness: { readonly windowMs: number; readonly probeTimeoutMs: number };
  readonly resolver: ResolverSettings;
  /** For the log at start (each one a MDA_CONFIG_WARNING line). */
  readonly warnings: readonly ConfigWarning[];
}

/** Who runs the agent (neutron deduces the socket mode from it). */
export interface ProcessIdentity {
  readonly uid: number;
  readonly gid: number;
  readonly user: string;
  readonly group: string;
}

function currentIdentity(): ProcessIdentity {
  const me = userInfo();
  return { uid: me.uid, gid: me.gid, user: me.username, group: String(me.gid) };
}

/** The settings a configuration asks for. Throws ConfigError naming the option for one that cannot work. */
export function agentSettings(config: AgentConfig, me: ProcessIdentity = currentIdentity()): AgentSettings {
  const warnings: ConfigWarning[] = [];
  return deepFreeze({
    socket: {
      path: config.socketPath,
      mode: socketModeFor(config.socketMode, config.proxyUser, config.proxyGroup, me),
      backlog: config.backlog,
    },
    maxBodySize: config.maxBodySize,
    sharedSecret: config.sharedSecret,
    nova: novaSettings(config),
    log: { level: effectiveLevel(config), file: config.logFile },
    admin: { socketPath: config.adminSocket, bind: config.adminBind },
    readiness: readinessSettings(config),
    resolver: resolverSettings(config, warnings),
    warnings,
  });
}

/** The pino level the configuration asks for (debug = True wins, as in neutron). */
export function effectiveLevel(config: Pick<AgentConfig, 'debug' | 'logLevel'>): string {
  return config.debug ? 'debug' : config.logLevel;
}

export function readinessSettings(config: Pick<AgentConfig, 'readinessWindow'>): AgentSettings['readiness'] {
  return { windowMs: config.readinessWindow * 1000, probeTimeoutMs: PROBE_TIMEOUT_MS };
}

/**
 * Nova's client: over https the CA bundle (auth_ca_cert) when set, and the client certificate and key when
 * both are set (mutual TLS only with both halves, as neutron); over http no file is read.
 */
export function novaSettings(
  c: Pick<
    AgentConfig,
    | 'novaHost'
    | 'novaPort'
    | 'novaProtocol'
    | 'novaInsecure'
    | 'novaCaFile'
    | 'novaClientCert'
    | 'novaClientKey'
    | 'novaTimeout'
    | 'novaConnections'
  >,
): NovaClientOptions {
  const https = c.novaProtocol === 'https';
  const mutual = https && c.novaClientCert !== '' && c.novaClientKey !== '';
  return {
    host: c.novaHost,
    port: c.novaPort,
    protocol: c.novaProtocol,
    insecure: c.novaInsecure,
    ...(https && c.novaCaFile ? { ca: readConfigFile('auth_ca_cert', c.novaCaFile) } : {}),
    ...(mutual
      ? {
          clientCert: readConfigFile('nova_client_cert', c.novaClientCert),
          clientKey: readConfigFile('nova_client_priv_key', c.novaClientKey),
        }
      : {}),
    timeoutMs: Math.round(c.novaTimeout * 1000),
    connections: c.novaConnections,
  };
}

/** Which resolver, and its settings (its warnings added to `warnings`). */
export function resolverSettings(config: AgentConfig, warnings: ConfigWarning[] = []): ResolverSettings {
  const { kind, reason } = chooseResolver(config);
  const wide = resolverWideSettings(config);
  switch (kind) {
    case 'inventory':
      if (config.inventoryFile === '') throw new ConfigError('resolver = inventory needs inventory_file');
      return { kind, reason, inventoryFile: config.inventoryFile };
    case 'ovn':
      if (config.ovnSbConnection === '')
        throw new ConfigError('resolver = ovn needs [ovn] ovn_sb_connection');
      return { kind, reason, ovn: config };
    case 'rpc': {
      const rpc = rpcSettings(config, wide.lookup);
      warnings.push(...rpc.warnings.map((w) => ({ ...w, fields: { component: 'rpc', ...w.fields } })));
      return { kind, reason, cache: wide.cache, rpc };
    }
    case 'neutron':
      return { kind, reason, cache: wide.cache, neutron: neutronSettings(config) };
  }
}
