#!/usr/bin/env node
/*
 * metadata-agent: the per-node agent behind the proxies' UNIX socket. Reads neutron's metadata_agent.ini
 * (--config-file/--config-dir), flags override it; the shared secret comes from the file, the environment
 * (NMP_METADATA_PROXY_SHARED_SECRET) or --metadata-proxy-shared-secret-file, never from a flag.
 *
 * Signals: SIGHUP reloads the configuration (see reload.ts); SIGTERM/SIGINT stop after in-flight
 * requests. Metrics and health are on the admin listener (admin_socket / admin_bind), never on the
 * proxies' socket.
 */
import {
  addSchemaOptions,
  createCli,
  createLogger,
  describeConfig,
  InheritedListeners,
  type LoadedConfig,
  type Logger,
  type LookupQuery,
  loadConfig,
  MetadataError,
  type Predecessor,
  runMain,
  stopOnSignals,
  takeInheritedListeners,
  takePredecessor,
} from '@nmp/common';
import { AdminServer } from './admin-server.js';
import { METADATA_SOCKET_NAME, MetadataAgent } from './agent.js';
import { AgentMetrics } from './metrics.js';
import type { NovaClient } from './nova-client.js';
import { AGENT_COMPAT, agentSchema } from './options.js';
import { Readiness } from './readiness.js';
import { type AgentConfig, type AgentSchema, ConfigReloader, logConfigWarnings } from './reload.js';
import { buildResolver, chooseResolver, type ResolverParts } from './resolver-factory.js';
import { RpcMetrics } from './rpc/metrics.js';
import { effectiveRpcConfig, logWarnings } from './rpc/settings.js';
import { describeTransport } from './rpc/transport-url.js';
import { type AgentSettings, agentSettings, effectiveLevel } from './settings.js';
import { VERSION } from './version.js';

const PROGRAM = 'metadata-agent';

/** A lookup no port can match (nil network, unspecified address): Neutron answering it proves it works. */
const PROBE_QUERY: LookupQuery = {
  mode: 'network',
  id: '00000000-0000-0000-0000-000000000000',
  ip: '0.0.0.0',
};

/** Parse, build the settings, start. */
async function main(): Promise<void> {
  const { load, printConfig } = await parseCommandLine(process.argv.slice(2));
  const loaded = load();
  if (printConfig) return printConfiguration(loaded);
  process.title = PROGRAM;
  const handOver = takeHandOver();
  // Before the settings: the load's warnings (a typo'd option) are in the log even when the settings fail.
  const logger = createLogger({
    name: PROGRAM,
    level: effectiveLevel(loaded.config),
    ...(loaded.config.logFile ? { file: loaded.config.logFile } : {}),
  });
  logConfigWarnings(loaded, loaded.config, logger);
  const settings = agentSettings(loaded.config);
  logWarnings(logger, settings.warnings);
  await start(settings, logger, handOver, (targets) => new ConfigReloader(load, loaded.config, targets));
}

/** The flags, and how to load the configuration they name (again on SIGHUP). */
async function parseCommandLine(argv: readonly string[]) {
  const cli = addSchemaOptions(
    createCli(PROGRAM, VERSION, argv).usage(
      '$0 [options]\n\n' +
        'Serve instance metadata requests arriving from ns-metadata-proxy on a UNIX socket: look up the port, ' +
        "sign the instance id and forward to Nova's metadata API.\n\n" +
        'Signals: SIGHUP reloads the configuration (shared secret, log level, inventory), SIGTERM stops.\n\n' +
        'Examples:\n' +
        '  $0 --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/metadata_agent.ini\n' +
        '  $0 --resolver inventory --inventory-file ports.json --metadata-proxy-socket /tmp/mp.sock',
    ),
    agentSchema,
  ).option('print-config', {
    type: 'boolean',
    describe: 'print the effective configuration (secrets masked) and exit',
  });
  const flags = await cli.parseAsync();
  return {
    load: () => loadConfig(agentSchema, { flags, env: process.env, compat: AGENT_COMPAT }),
    printConfig: flags['print-config'] === true,
  };
}

function printConfiguration(loaded: LoadedConfig<AgentSchema>): void {
  for (const w of loaded.warnings) process.stderr.write(`${PROGRAM}: warning: ${w}\n`);
  process.stdout.write(describeConfig(agentSchema, loaded));
  process.stdout.write(describeChoice(loaded.config));
}

interface HandOver {
  readonly inherited: InheritedListeners;
  readonly predecessor: Predecessor | undefined;
  /** The proxies' socket, passed by systemd or by the agent this one replaces. */
  readonly socketFd: number | undefined;
}

/**
 * Sockets passed by systemd (nmp-metadata-agent.socket) or by the agent this one replaces; read first, so
 * that nothing started later inherits the variables.
 */
function takeHandOver(): HandOver {
  const inherited = new InheritedListeners(takeInheritedListeners());
  const predecessor = takePredecessor();
  const socketFd =
    inherited.take(METADATA_SOCKET_NAME) ??
    // A .socket unit without FileDescriptorName=metadata: its one socket is ours.
    (inherited.size === 1 && !predecessor ? inherited.takeAll()[0]!.fd : undefined);
  return { inherited, predecessor, socketFd };
}

/** Build the agent the settings describe, serve, and stay until a signal stops it. */
async function start(
  settings: AgentSettings,
  logger: Logger,
  handOver: HandOver,
  reloaderFor: (targets: ConstructorParameters<typeof ConfigReloader>[2]) => ConfigReloader,
): Promise<void> {
  const { inherited, predecessor, socketFd } = handOver;
  const metrics = new AgentMetrics({ defaultMetrics: true, version: VERSION });
  const parts = await startResolver(settings, logger, metrics);
  // The probes reach what answers instances: the agent's Nova pool, the resolver without its cache.
  const readiness: Readiness = new Readiness({
    ...settings.readiness,
    probeNova: (ms): Promise<void> => probeNova(agent.nova, ms),
    probeResolver: () => probeResolver(parts),
    ...(parts.health ? { resolverHealth: parts.health } : {}),
  });
  const agent: MetadataAgent = new MetadataAgent({
    socketPath: settings.socket.path,
    socketMode: settings.socket.mode,
    backlog: settings.socket.backlog,
    ...(socketFd !== undefined
      ? { inheritedFd: socketFd, inheritedFrom: predecessor ? 'predecessor' : 'systemd' }
      : {}),
    sharedSecret: settings.sharedSecret,
    resolver: parts.resolver,
    logger,
    maxBodySize: settings.maxBodySize,
    metrics,
    readiness,
    nova: settings.nova,
  });
  metrics.setSources({
    connections: () => agent.connections,
    inFlight: () => agent.handler.inFlight,
    lastAnswer: () => readiness.lastAnswer,
    ...(parts.cache ? { cache: () => parts.cache!.stats } : {}),
    ...(parts.neutron ? { neutron: () => parts.neutron!.stats } : {}),
  });
  const admin = new AdminServer({ ...settings.admin, logger, metrics, readiness });

  await agent.listen();
  try {
    await admin.listen(inherited);
    inherited.checkAllTaken(PROGRAM, `'${METADATA_SOCKET_NAME}' (and the admin listeners of a hand-over)`);
  } catch (err) {
    await Promise.all([agent.close(0), admin.close()]);
    throw err;
  }

  const reloader = reloaderFor({
    signer: agent.signer,
    logger,
    readiness,
    metrics,
    ...(parts.inventory ? { inventory: parts.inventory } : {}),
    ...(parts.neutron ? { neutron: parts.neutron } : {}),
  });
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'reloading the configuration');
    reloader.reload().catch((err: unknown) => logger.error({ err }, 'configuration reload crashed'));
  });

  // As neutron's agent: the first state report once the socket serves.
  const rpc = parts.rpc;
  rpc?.reporter?.start();

  const stop = async (handedOver: boolean) => {
    readiness.stopping = true;
    rpc?.reporter?.stop();
    await agent.close(10_000, { keepSocket: handedOver });
    await admin.close({ keepPaths: handedOver });
  };
  stopOnSignals(
    logger,
    () => stop(false),
    () => ({ inFlight: agent.handler.inFlight }),
    {
      descriptors: () => [...agent.descriptors(), ...admin.descriptors()],
      retire: () => stop(true),
    },
  );

  if (predecessor && rpc && settings.resolver.kind === 'rpc') {
    // The agent being replaced answers until this one can look ports up (bounded: an outage of the
    // broker must not block the hand-over; the lookups then wait or fail as they would anyway).
    await rpc.broker.whenConnected(settings.resolver.rpc.handOverWaitMs);
  }
  await predecessor?.ready(logger);

  // Last: whoever waits for this line may signal us at once.
  logger.info(
    {
      socket: settings.socket.path,
      ...(socketFd !== undefined ? { inherited: predecessor ? 'hand-over' : 'systemd' } : {}),
      admin: admin.addresses,
      nova: agent.nova.origin,
      resolver: parts.kind,
      ...(rpc && settings.resolver.kind === 'rpc'
        ? { transport: rpc.transport, reportInterval: settings.resolver.rpc.effective.reportInterval }
        : {}),
      version: VERSION,
    },
    'metadata-agent listening',
  );
  // Supervisors and operators wait for this line: out at once, not with the next batch.
  logger.flush();
}

/** The resolver, its metrics and (rpc) its broker connection started; lookups arriving first wait for it. */
async function startResolver(
  settings: AgentSettings,
  logger: Logger,
  metrics: AgentMetrics,
): Promise<ResolverParts> {
  // The RPC families exist only when RPC is the resolver (a REST node has no broker to report on).
  const rpcMetrics = settings.resolver.kind === 'rpc' ? new RpcMetrics(metrics.registry) : undefined;
  // Keystone's and Neutron's calls feed the metrics; readiness counts completed lookups (handler.ts).
  const parts = await buildResolver(settings.resolver, logger, metrics, {
    facts: {
      version: VERSION,
      socketPath: settings.socket.path,
      novaHost: settings.nova.host,
      novaPort: settings.nova.port,
    },
    ...(rpcMetrics ? { rpcObserver: rpcMetrics } : {}),
  });
  parts.registerMetrics?.(metrics.registry);
  const rpc = parts.rpc;
  if (rpc) {
    rpcMetrics?.setSources({
      broker: () => rpc.broker.stats,
      client: () => rpc.client.stats,
      ...(rpc.reporter ? { reports: () => rpc.reporter!.stats } : {}),
    });
    // Connecting starts now; lookups arriving first wait for it (within rpc_lookup_timeout).
    rpc.broker.start();
  }
  return parts;
}

/** Readiness: Nova answered GET / below 500. */
async function probeNova(nova: NovaClient, timeoutMs: number): Promise<void> {
  const status = await nova.probe(timeoutMs);
  if (status >= 500) throw new Error(`Nova answered GET / with ${status}`);
}

/** Readiness: the resolver, without its cache, answered a lookup ("not found" is the expected answer). */
async function probeResolver(parts: ResolverParts): Promise<void> {
  try {
    await parts.uncached.resolve(PROBE_QUERY);
  } catch (err) {
    if (err instanceof MetadataError && err.status === 404) return;
    throw err;
  }
}

/** The --print-config lines that say which resolver (and for rpc, which broker) the agent would use. */
function describeChoice(config: AgentConfig): string {
  let choice: ReturnType<typeof chooseResolver>;
  try {
    choice = chooseResolver(config);
  } catch (err) {
    return `# resolver: none: ${(err as Error).message}\n`;
  }
  let out = `# resolver: ${choice.kind} (${choice.reason})\n`;
  if (choice.kind === 'rpc') {
    const { url, config: c } = effectiveRpcConfig(config);
    out += `# transport: ${describeTransport(url, c.rabbitSsl)}, exchange ${c.controlExchange}`;
    out += `, reports every ${c.reportInterval} s${c.reportInterval === 0 ? ' (off)' : ''}\n`;
  }
  return out;
}

runMain(PROGRAM, main);
