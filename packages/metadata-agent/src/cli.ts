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
import { userInfo } from 'node:os';
import {
  addSchemaOptions,
  createCli,
  createLogger,
  describeConfig,
  InheritedListeners,
  type LookupQuery,
  loadConfig,
  MetadataError,
  runMain,
  stopOnSignals,
  takeInheritedListeners,
  takePredecessor,
} from '@nmp/common';
import { AdminServer } from './admin-server.js';
import { METADATA_SOCKET_NAME, MetadataAgent } from './agent.js';
import { AgentMetrics } from './metrics.js';
import { AGENT_COMPAT, agentSchema, socketModeFor } from './options.js';
import { Readiness } from './readiness.js';
import { type AgentConfig, ConfigReloader, effectiveLevel, logConfigWarnings } from './reload.js';
import { buildResolver, chooseResolver } from './resolver-factory.js';
import { effectiveRpcConfig } from './rpc/create.js';
import { RpcMetrics } from './rpc/metrics.js';
import { describeTransport } from './rpc/transport-url.js';
import { UpstreamTelemetry } from './upstream-observer.js';
import { VERSION } from './version.js';

const PROGRAM = 'metadata-agent';

/** Longest a readiness probe may take. */
const PROBE_TIMEOUT_MS = 5000;

/** A lookup no port can match (nil network, unspecified address): Neutron answering it proves it works. */
const PROBE_QUERY: LookupQuery = {
  mode: 'network',
  id: '00000000-0000-0000-0000-000000000000',
  ip: '0.0.0.0',
};

async function main(): Promise<void> {
  const cli = addSchemaOptions(
    createCli(PROGRAM, VERSION, process.argv.slice(2)).usage(
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
  const load = () => loadConfig(agentSchema, { flags, env: process.env, compat: AGENT_COMPAT });
  const loaded = load();
  const config = loaded.config;
  if (flags['print-config']) {
    for (const w of loaded.warnings) process.stderr.write(`${PROGRAM}: warning: ${w}\n`);
    process.stdout.write(describeConfig(agentSchema, loaded));
    process.stdout.write(describeChoice(config));
    return;
  }
  process.title = PROGRAM;
  // Sockets passed by systemd (nmp-metadata-agent.socket) or by the agent this one replaces; read first,
  // so that nothing started later inherits the variables.
  const inherited = new InheritedListeners(takeInheritedListeners());
  const predecessor = takePredecessor();
  const socketFd =
    inherited.take(METADATA_SOCKET_NAME) ??
    // A .socket unit without FileDescriptorName=metadata: its one socket is ours.
    (inherited.size === 1 && !predecessor ? inherited.takeAll()[0]!.fd : undefined);
  const logger = createLogger({
    name: PROGRAM,
    level: effectiveLevel(config),
    ...(config.logFile ? { file: config.logFile } : {}),
  });
  logConfigWarnings(loaded, config, logger);

  const metrics = new AgentMetrics({ defaultMetrics: true, version: VERSION });
  // The probes are wired once the agent and the resolver exist (below).
  let probeNova: (timeoutMs: number) => Promise<void> = () => Promise.reject(new Error('starting'));
  let probeResolver: (timeoutMs: number) => Promise<void> = probeNova;
  let resolverHealth: () => string | undefined = () => undefined;
  const readiness = new Readiness({
    windowMs: config.readinessWindow * 1000,
    probeTimeoutMs: PROBE_TIMEOUT_MS,
    probeNova: (ms) => probeNova(ms),
    probeResolver: (ms) => probeResolver(ms),
    resolverHealth: () => resolverHealth(),
  });

  // The RPC families exist only when RPC is the resolver (a REST node has no broker to report on).
  const rpcMetrics = chooseResolver(config).kind === 'rpc' ? new RpcMetrics(metrics.registry) : undefined;
  const parts = await buildResolver(config, logger, new UpstreamTelemetry(metrics, readiness), {
    facts: {
      version: VERSION,
      socketPath: config.socketPath,
      novaHost: config.novaHost,
      novaPort: config.novaPort,
    },
    ...(rpcMetrics ? { rpcObserver: rpcMetrics } : {}),
  });
  if (parts.health) resolverHealth = parts.health;
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
  const me = userInfo();
  const agent = new MetadataAgent({
    socketPath: config.socketPath,
    socketMode: socketModeFor(config.socketMode, config.proxyUser, config.proxyGroup, {
      uid: me.uid,
      gid: me.gid,
      user: me.username,
      group: String(me.gid),
    }),
    backlog: config.backlog,
    ...(socketFd !== undefined
      ? { inheritedFd: socketFd, inheritedFrom: predecessor ? 'predecessor' : 'systemd' }
      : {}),
    sharedSecret: config.sharedSecret,
    resolver: parts.resolver,
    logger,
    maxBodySize: config.maxBodySize,
    metrics,
    readiness,
    nova: {
      host: config.novaHost,
      port: config.novaPort,
      protocol: config.novaProtocol,
      insecure: config.novaInsecure,
      caFile: config.novaCaFile,
      clientCert: config.novaClientCert,
      clientKey: config.novaClientKey,
      timeoutMs: Math.round(config.novaTimeout * 1000),
      connections: config.novaConnections,
    },
  });
  probeNova = async (ms) => {
    const status = await agent.nova.probe(ms);
    if (status >= 500) throw new Error(`Nova answered GET / with ${status}`);
  };
  probeResolver = async () => {
    try {
      await parts.uncached.resolve(PROBE_QUERY);
    } catch (err) {
      // "Not found" is the answer expected from a working resolver.
      if (err instanceof MetadataError && err.status === 404) return;
      throw err;
    }
  };
  metrics.setSources({
    connections: () => agent.connections,
    inFlight: () => agent.handler.inFlight,
    lastAnswer: () => readiness.lastAnswer,
    ...(parts.cache ? { cache: () => parts.cache!.stats } : {}),
    ...(parts.neutron ? { neutron: () => parts.neutron!.stats } : {}),
  });

  const admin = new AdminServer({
    socketPath: config.adminSocket,
    bind: config.adminBind,
    logger,
    metrics,
    readiness,
  });
  await agent.listen();
  try {
    await admin.listen(inherited);
    inherited.checkAllTaken(PROGRAM, `'${METADATA_SOCKET_NAME}' (and the admin listeners of a hand-over)`);
  } catch (err) {
    await Promise.all([agent.close(0), admin.close()]);
    throw err;
  }

  const reloader = new ConfigReloader(load, config, {
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

  if (predecessor && rpc) {
    // The agent being replaced answers until this one can look ports up (bounded: an outage of the
    // broker must not block the hand-over; the lookups then wait or fail as they would anyway).
    await rpc.broker.whenConnected(Math.round(config.rpcConnectTimeout * 1000) + 5_000);
  }
  await predecessor?.ready(logger);

  // Last: whoever waits for this line may signal us at once.
  logger.info(
    {
      socket: config.socketPath,
      ...(socketFd !== undefined ? { inherited: predecessor ? 'hand-over' : 'systemd' } : {}),
      admin: admin.addresses,
      nova: agent.nova.origin,
      resolver: parts.kind,
      ...(rpc ? { transport: rpc.transport, reportInterval: config.reportInterval } : {}),
      version: VERSION,
    },
    'metadata-agent listening',
  );
  // Supervisors and operators wait for this line: out at once, not with the next batch.
  logger.flush();
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
