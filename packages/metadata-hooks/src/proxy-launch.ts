/*
 * Starting and stopping what serves a record's namespace, by proxy_mode: a proxy process of ours
 * (process-manager.ts), an attachment of the metadata-proxy-daemon (daemon-attach.ts), or nothing when the
 * proxy runs elsewhere (systemd). Switching between them stops the old one first, so two listeners never
 * fight for the port.
 */
import { fileURLToPath } from 'node:url';
import { SERVICE_NODE_FLAGS, withoutSecrets } from '@nmp/common';
import { attachToDaemon, detachFromDaemon } from './daemon-attach.js';
import { type HookRecord, type HooksConfig, logFileFor, type ProxyAction } from './hook-records.js';
import { startProxy, stopProxy } from './process-manager.js';

/**
 * The command that starts ns-metadata-proxy: the configured one, or the one installed beside us; a script
 * runs under this node with the services' flags.
 */
export function proxyProgram(config: Pick<HooksConfig, 'proxyCommand'>): string[] {
  const path =
    config.proxyCommand !== ''
      ? config.proxyCommand
      : fileURLToPath(new URL('../../../ns-metadata-proxy/dist/src/cli.js', import.meta.url));
  return /\.(c|m)?js$/.test(path) ? [process.execPath, ...SERVICE_NODE_FLAGS, path] : [path];
}

/** Full argv of a proxy. */
export function proxyArgv(
  config: HooksConfig,
  identity: HookRecord['identity'],
  binds: readonly string[],
  pidFile: string,
): string[] {
  return [
    ...proxyProgram(config),
    ...binds.flatMap((b) => ['--bind', b]),
    identity.mode === 'network' ? '--network-id' : '--router-id',
    identity.id,
    '--metadata-proxy-socket',
    config.socketPath,
    '--pid-file',
    pidFile,
    ...(config.proxyUser !== '' ? ['--metadata-proxy-user', config.proxyUser] : []),
    ...(config.proxyGroup !== '' ? ['--metadata-proxy-group', config.proxyGroup] : []),
    ...config.proxyConfigFiles.flatMap((f) => ['--config-file', f]),
  ];
}

export function proxyKind(config: HooksConfig, startProxy: boolean | undefined): HookRecord['proxy'] {
  if (startProxy === false) return 'external';
  return config.proxyMode === 'daemon' ? 'daemon' : 'hooks';
}

export async function launch(
  config: HooksConfig,
  record: HookRecord,
  previous: HookRecord | undefined,
): Promise<{ pid: number | undefined; action: ProxyAction }> {
  if (record.proxy !== 'daemon' && previous?.proxy === 'daemon') {
    // Leaving daemon mode: the daemon must not hold the port any more.
    const failed = await detachFromDaemon(config, record.namespace);
    if (failed) throw failed;
  }
  if (record.proxy === 'daemon') {
    // Entering daemon mode: a proxy process of ours must not hold the port.
    await stopProxy(record.pidFile, record.identity.id, { killTimeoutMs: config.killTimeout * 1000 });
    return { pid: await attachToDaemon(config, record), action: 'attached' };
  }
  if (record.proxy === 'external') {
    // Switching to an externally run proxy: ours must not hold the port.
    await stopProxy(record.pidFile, record.identity.id, { killTimeoutMs: config.killTimeout * 1000 });
    return { pid: undefined, action: 'external' };
  }
  return startProxy(
    {
      id: record.identity.id,
      namespace: record.namespace,
      argv: proxyArgv(config, record.identity, record.binds, record.pidFile),
      pidFile: record.pidFile,
      logFile: logFileFor(config, record.id),
      // The proxy needs no secret: none of ours (or of the caller's shell) reaches its environment.
      env: withoutSecrets(process.env),
    },
    { startTimeoutMs: config.startTimeout * 1000, killTimeoutMs: config.killTimeout * 1000 },
  );
}

export function describeProxy(action: ProxyAction, pid: number | undefined): string {
  if (action === 'external') return 'proxy run externally (not started here)';
  if (action === 'attached') return `attached to the metadata proxy daemon (worker pid ${pid ?? '?'})`;
  return `proxy ${action} (pid ${pid})`;
}
