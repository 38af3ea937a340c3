#!/usr/bin/env node
/*
 * metadata-proxy-daemon: one process serving instance metadata in many namespaces.
 *
 *   metadata-proxy-daemon [serve] [--config-file F]       run the daemon (as root; see docs/deployment.md)
 *   metadata-proxy-daemon status [--json]                   every attachment and its health
 *   metadata-proxy-daemon attach --namespace NS (--network-id ID | --router-id ID | --ovn-network-id ID) --bind B [--bind B]
 *   metadata-proxy-daemon detach --namespace NS
 *
 * The last three talk to a running daemon over its control socket (what the hooks do in daemon mode).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  ADMIN_UNIX,
  addSchemaOptions,
  ConfigError,
  createCli,
  createLogger,
  InheritedListeners,
  LogEvent,
  loadConfig,
  notifySystemd,
  packageVersion,
  runMain,
  stopOnSignals,
  takeInheritedListeners,
  takePredecessor,
} from '@nmp/common';
import { describeServing, loadTokenKey, proxyIdentity, servingSettings } from '@nmp/ns-metadata-proxy';
import { CONTROL_FD } from './control-server.js';
import { daemonOptions } from './options.js';
import {
  type AttachSpec,
  DaemonRequestError,
  DaemonUnreachableError,
  daemonClient,
  formatDaemonStatus,
} from './protocol.js';
import { STATE_FILE_NAME } from './state-file.js';
import { MetadataProxyDaemon } from './supervisor.js';
import { type DaemonConfig, workerSettingsFor } from './worker-settings.js';

const PROGRAM = 'metadata-proxy-daemon';
const VERSION = packageVersion(import.meta.url);

/** uid/gid for a user and group given as names or numbers (NSS through getent). */
function resolveIds(user: string, group: string): { uid?: number; gid?: number } {
  const lookup = (db: 'passwd' | 'group', name: string): string[] => {
    try {
      return execFileSync('getent', [db, name], { encoding: 'utf8' }).trim().split(':');
    } catch {
      throw new ConfigError(`Invalid ${db === 'passwd' ? 'user' : 'group'}: '${name}'`);
    }
  };
  const out: { uid?: number; gid?: number } = {};
  if (user !== '') {
    if (/^\d+$/.test(user)) out.uid = Number(user);
    else {
      const pw = lookup('passwd', user);
      out.uid = Number(pw[2]);
      if (group === '') out.gid = Number(pw[3]);
    }
  }
  if (group !== '') out.gid = /^\d+$/.test(group) ? Number(group) : Number(lookup('group', group)[2]);
  return out;
}

async function serve(config: DaemonConfig, warnings: readonly string[]): Promise<void> {
  // A daemon replacing another (SIGUSR2 / systemctl reload) gets its control and admin sockets passed,
  // and its attachments over the hand-over channel.
  const inherited = new InheritedListeners(takeInheritedListeners());
  const predecessor = takePredecessor();
  const controlFd = inherited.take(CONTROL_FD);
  const adminFd = inherited.take(ADMIN_UNIX);
  inherited.checkAllTaken(PROGRAM, `'${CONTROL_FD}' and '${ADMIN_UNIX}' (from the daemon it replaces)`);
  const level = config.debug ? 'debug' : config.logLevel;
  const logger = createLogger({
    name: PROGRAM,
    level,
    base: { role: 'supervisor' },
    ...(config.logFile ? { file: config.logFile } : {}),
  });
  // The standalone proxy's own reading of the same options: what one listener does here is what one
  // ns-metadata-proxy does with the same file.
  const serving = servingSettings(config);
  // The node key is read here, as root; the worker gets it over IPC.
  const tokenKey = serving.ssrf ? loadTokenKey(serving.ssrf) : undefined;
  for (const w of [...warnings, ...serving.warnings, ...(tokenKey?.warnings ?? [])])
    logger.warn({ code: LogEvent.MDP_CONFIG_WARNING }, w);
  const ids = resolveIds(config.user, config.group);
  const daemon = new MetadataProxyDaemon({
    controlSocket: config.controlSocket,
    stateFile: join(config.daemonStateDir, STATE_FILE_NAME),
    worker: workerSettingsFor(config, serving),
    ...(tokenKey?.key ? { tokenKey: tokenKey.key } : {}),
    adminSocket: serving.adminSocket,
    ...(ids.uid !== undefined ? { workerUid: ids.uid } : {}),
    ...(ids.gid !== undefined ? { workerGid: ids.gid } : {}),
    netnsExec: config.netnsExec,
    pythonCommand: config.pythonCommand,
    attachConcurrency: config.attachConcurrency,
    helperTimeoutMs: config.helperTimeout * 1000,
    namespaceCheckIntervalMs: config.namespaceCheckInterval * 1000,
    logger,
  });
  await daemon.start(
    predecessor
      ? {
          predecessor,
          ...(controlFd !== undefined ? { controlFd } : {}),
          ...(adminFd !== undefined ? { adminFd } : {}),
        }
      : undefined,
  );
  process.title = PROGRAM;
  logger.info(
    {
      control: config.controlSocket,
      agent: config.socketPath,
      worker: daemon.workerPid,
      workerUid: ids.uid,
      ...(serving.adminSocket !== '' ? { admin: serving.adminSocket } : {}),
      ...describeServing(serving),
      version: VERSION,
    },
    'metadata-proxy-daemon ready',
  );
  // Type=notify: systemd counts the daemon started once its attachments are served again. A successor
  // serves the handed-over ones already: the old daemon may go (and systemd learns the new main pid).
  if (predecessor) await predecessor.ready(logger);
  else void daemon.restored.then(() => notifySystemd(['READY=1'], logger));
  stopOnSignals(logger, () => daemon.stop(), undefined, {
    descriptors: () => daemon.descriptors(),
    handOff: (successor) => daemon.handOff(successor),
    retire: () => daemon.retire(),
    resume: () => daemon.resume(),
    // A thousand namespaces' sockets go over two IPC hops; a cold start of the successor comes first.
    timeoutMs: 180_000,
  });
}

/** Why the daemon gave no status, with what to check; rethrows anything that is not about the daemon. */
function unanswered(err: unknown, controlSocket: string): string {
  if (err instanceof DaemonUnreachableError) {
    const hint =
      err.errno === 'EACCES'
        ? 'the control socket is root-only: run as root'
        : 'is nmp-metadata-proxy-daemon.service running? (journalctl -u nmp-metadata-proxy-daemon)';
    return `${err.message}; ${hint}`;
  }
  if (err instanceof DaemonRequestError) return `${err.message} (daemon_control_socket = ${controlSocket})`;
  throw err;
}

async function main(): Promise<void> {
  let done: Promise<void> = Promise.resolve();
  const load = (flags: Record<string, unknown>) => loadConfig(daemonOptions, { flags, env: process.env });
  const cli = addSchemaOptions(
    createCli(PROGRAM, VERSION, process.argv.slice(2)).usage(
      '$0 [serve|status|attach|detach]\n\nOne process serving instance metadata in many network namespaces.',
    ),
    daemonOptions,
  )
    .command(['serve', '$0'], 'run the daemon (root: it enters namespaces to create listeners)', {}, (a) => {
      const loaded = load(a);
      done = serve(loaded.config, loaded.warnings);
    })
    .command(
      'status',
      'every attachment: namespace, id, listeners, health; exit 3 when one is unhealthy or the daemon does not answer',
      (y) => y.option('json', { type: 'boolean', default: false }),
      (a) => {
        const { config } = load(a);
        done = daemonClient.list(config.controlSocket).then(
          ({ daemon, attachments }) => {
            process.stdout.write(
              a.json
                ? `${JSON.stringify({ daemon, attachments }, null, 2)}\n`
                : formatDaemonStatus(daemon, attachments),
            );
            if (!daemon.agentReachable || attachments.some((x) => !x.healthy)) process.exitCode = 3;
          },
          (err: unknown) => {
            // A daemon that cannot be asked is unhealthy (3, as metadata-hooks status says of it), not a
            // failure of this command (1).
            const error = unanswered(err, config.controlSocket);
            process.stdout.write(
              a.json
                ? `${JSON.stringify({ daemon: null, attachments: [], error }, null, 2)}\n`
                : `daemon UNREACHABLE: ${error}\n`,
            );
            process.exitCode = 3;
          },
        );
      },
    )
    .command(
      'attach',
      'serve a namespace: listeners on the binds, stamping the network, router or OVN network id',
      (y) =>
        y
          .option('namespace', { type: 'string', demandOption: true, requiresArg: true })
          .option('network-id', { type: 'string', requiresArg: true })
          .option('router-id', { type: 'string', requiresArg: true })
          .option('ovn-network-id', { type: 'string', requiresArg: true })
          // Repeatable, not an array: a yargs array would swallow what follows it.
          .option('bind', { type: 'string', demandOption: true, requiresArg: true }),
      (a) => {
        const { config } = load(a);
        // The proxy's own rule (exactly one id, well-formed), so both CLIs say the same.
        const identity = proxyIdentity({
          networkId: (a['network-id'] as string | undefined) ?? '',
          routerId: (a['router-id'] as string | undefined) ?? '',
          ovnNetworkId: (a['ovn-network-id'] as string | undefined) ?? '',
        });
        const spec: AttachSpec = {
          id: identity.id,
          mode: identity.mode,
          namespace: a.namespace,
          binds: [a.bind].flat().map(String),
        };
        done = daemonClient
          .attach(config.controlSocket, spec, config.helperTimeout * 1000 + 30_000)
          .then((s) => {
            process.stdout.write(`${s.namespace}: ${s.state} on ${s.listening.join(' ')}\n`);
          });
      },
    )
    .command(
      'detach',
      'stop serving a namespace (its in-flight requests finish)',
      (y) => y.option('namespace', { type: 'string', demandOption: true, requiresArg: true }),
      (a) => {
        const { config } = load(a);
        done = daemonClient.detach(config.controlSocket, { namespace: a.namespace }).then((d) => {
          process.stdout.write(d ? `${a.namespace}: detached\n` : `${a.namespace}: was not attached\n`);
        });
      },
    )
    .strict();
  await cli.parseAsync();
  await done;
}

runMain(PROGRAM, main);
