/*
 * Starting and stopping what serves a record's namespace, by proxy_mode: a proxy process of ours
 * (@nmp/host's process manager), an attachment of the metadata-proxy-daemon (daemon-attach.ts), or nothing when the
 * proxy runs elsewhere (systemd). Switching between them stops the old one first, so two listeners never
 * fight for the port.
 */
import {
  proxyArgv as hostProxyArgv,
  proxyProgram as hostProxyProgram,
  startProxy,
  stopProxy,
} from '@nmp/host';
import { attachToDaemon, detachFromDaemon } from './daemon-attach.js';
import { type HookRecord, type HooksConfig, logFileFor, type ProxyAction } from './hook-records.js';

/** The command that starts ns-metadata-proxy: proxy_command, or the one installed beside us. */
export function proxyProgram(config: Pick<HooksConfig, 'proxyCommand'>): string[] {
  return hostProxyProgram(config.proxyCommand);
}

/** Full argv of a record's proxy. */
export function proxyArgv(
  config: HooksConfig,
  identity: HookRecord['identity'],
  binds: readonly string[],
  pidFile: string,
): string[] {
  return hostProxyArgv({
    command: config.proxyCommand,
    binds,
    identity,
    socketPath: config.socketPath,
    pidFile,
    user: config.proxyUser,
    group: config.proxyGroup,
    configFiles: config.proxyConfigFiles,
  });
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
      // The proxy needs no secret: none of ours (or of the caller's shell) reaches its environment.
      logFile: logFileFor(config, record.id),
    },
    { startTimeoutMs: config.startTimeout * 1000, killTimeoutMs: config.killTimeout * 1000 },
  );
}

export function describeProxy(action: ProxyAction, pid: number | undefined): string {
  if (action === 'external') return 'proxy run externally (not started here)';
  if (action === 'attached') return `attached to the metadata proxy daemon (worker pid ${pid ?? '?'})`;
  return `proxy ${action} (pid ${pid})`;
}
