/*
 * proxy_mode = daemon: the hooks attach a namespace to the one metadata-proxy-daemon over its control
 * socket (binds and id as a proxy would get them), detach it on remove, and ask it for its attachments for
 * status. Only the daemon's client is loaded (@nmp/metadata-proxy-daemon/client: the protocol), and only
 * when daemon mode is in use: the hooks never load the daemon or the proxy it serves with.
 */
import type {
  AttachmentStatus,
  DaemonHealth,
  DaemonUnreachableError,
} from '@nmp/metadata-proxy-daemon/client';
import { HookError, type HookRecord, type HooksConfig } from './hook-records.js';

const client = () => import('@nmp/metadata-proxy-daemon/client');

/** Seconds a daemon attach may take: the helper's start plus some. */
export function daemonTimeoutMs(config: HooksConfig): number {
  return config.startTimeout * 1000 + 15_000;
}

function daemonFailure(
  config: HooksConfig,
  err: unknown,
  unreachable: typeof DaemonUnreachableError,
): HookError {
  if (err instanceof unreachable)
    return new HookError(
      `${err.message}; is nmp-metadata-proxy-daemon.service running? (daemon_control_socket = ${config.daemonControlSocket})`,
    );
  return new HookError(`metadata proxy daemon: ${(err as Error).message ?? String(err)}`);
}

/** Detach a namespace from the daemon; an unreachable daemon is returned as an error, not thrown. */
export async function detachFromDaemon(
  config: HooksConfig,
  namespace: string,
): Promise<HookError | undefined> {
  const { daemonClient, DaemonUnreachableError } = await client();
  try {
    await daemonClient.detach(config.daemonControlSocket, { namespace }, daemonTimeoutMs(config));
    return undefined;
  } catch (err) {
    return daemonFailure(config, err, DaemonUnreachableError);
  }
}

/** Attach a record's namespace to the daemon; resolves with the pid of the worker now serving it. */
export async function attachToDaemon(config: HooksConfig, record: HookRecord): Promise<number | undefined> {
  const { daemonClient, DaemonUnreachableError } = await client();
  try {
    await daemonClient.attach(
      config.daemonControlSocket,
      {
        id: record.identity.id,
        mode: record.identity.mode,
        namespace: record.namespace,
        binds: record.binds,
      },
      daemonTimeoutMs(config),
    );
    const { daemon } = await daemonClient.list(config.daemonControlSocket, daemonTimeoutMs(config));
    return daemon.workerPid;
  } catch (err) {
    throw daemonFailure(config, err, DaemonUnreachableError);
  }
}

/** What the daemon said (or why it said nothing), fetched once per status. */
export interface DaemonView {
  readonly daemon?: DaemonHealth;
  readonly attachments: ReadonlyMap<string, AttachmentStatus>;
  readonly error?: string;
}

export async function daemonView(config: HooksConfig): Promise<DaemonView> {
  const { daemonClient, DaemonUnreachableError } = await client();
  try {
    const l = await daemonClient.list(config.daemonControlSocket, daemonTimeoutMs(config));
    return { daemon: l.daemon, attachments: new Map(l.attachments.map((a) => [a.namespace, a])) };
  } catch (err) {
    return { attachments: new Map(), error: daemonFailure(config, err, DaemonUnreachableError).message };
  }
}
