#!/usr/bin/env node
/*
 * ovn-metadata-provisioner: on a chassis of an ML2/OVN cloud, keeps one ovnmeta-<network> namespace per
 * network with a local VIF, plugged into the integration bridge and served by the metadata proxy: the
 * half of neutron-ovn-metadata-agent (or of neutron-ovn-agent's metadata extension) that metadata-agent,
 * which answers the lookups, does not do. Runs as root (namespaces, veths, the Open_vSwitch database,
 * the daemon's control socket); reads the same files as the agent.
 *
 *   ovn-metadata-provisioner --config-file /etc/neutron/neutron.conf \
 *       --config-file /etc/neutron/neutron_ovn_metadata_agent.ini
 *   ovn-metadata-provisioner ... --once       resync once (provision what is missing, remove what is
 *                                             stale) and exit: 0 when every network is provisioned, 3 if not
 *
 * Signals: SIGHUP resyncs, SIGTERM/SIGINT stop (namespaces and proxies stay, as with neutron's agent).
 */
import { join } from 'node:path';
import {
  addSchemaOptions,
  ConfigError,
  createCli,
  createLogger,
  describeConfig,
  LogEvent,
  loadConfig,
  packageVersion,
  runMain,
  stopOnSignals,
} from '@nmp/common';
import { LocalOvs, localOvsConnection, OvnSouthbound, southboundConnection } from '@nmp/ovn';
import { PROVISIONER_COMPAT, provisionerSchema } from './options.js';
import { OvnProvisioner } from './provisioner.js';
import { DaemonLauncher, ProcessLauncher, type ProxyLauncher } from './proxy-launcher.js';

const PROGRAM = 'ovn-metadata-provisioner';

async function main(): Promise<void> {
  const cli = addSchemaOptions(
    createCli(PROGRAM, packageVersion(import.meta.url), process.argv.slice(2)).usage(
      '$0 [options]\n\n' +
        'Provision ovnmeta-<network> namespaces for the networks with a VIF on this chassis (ML2/OVN), ' +
        'plug them into the integration bridge and have the metadata proxy serve them.\n\n' +
        'Signals: SIGHUP resyncs, SIGTERM stops (namespaces stay).',
    ),
    provisionerSchema,
  )
    .option('once', {
      type: 'boolean',
      describe: 'resync once and exit (0: all provisioned, 3: some failed)',
    })
    .option('print-config', { type: 'boolean', describe: 'print the effective configuration and exit' });
  const flags = await cli.parseAsync();
  const loaded = loadConfig(provisionerSchema, { flags, env: process.env, compat: PROVISIONER_COMPAT });
  const config = loaded.config;
  if (flags['print-config']) {
    for (const w of loaded.warnings) process.stderr.write(`${PROGRAM}: warning: ${w}\n`);
    process.stdout.write(describeConfig(provisionerSchema, loaded));
    return;
  }
  if (config.ovnSbConnection === '') throw new ConfigError('[ovn] ovn_sb_connection is required');
  process.title = PROGRAM;
  const logger = createLogger({
    name: PROGRAM,
    level: config.debug ? 'debug' : config.logLevel,
    ...(config.logFile ? { file: config.logFile } : {}),
  });
  for (const w of loaded.warnings) logger.warn({ code: LogEvent.MDA_CONFIG_WARNING }, w);

  const ovs = new LocalOvs({ ...localOvsConnection(config), logger, full: true });
  ovs.start();
  // Waited for as long as it takes: without its name the chassis' ports cannot be told from others.
  const chassis = config.ovnChassisName || (await ovs.chassisName());
  const sb = new OvnSouthbound({
    ...southboundConnection(config),
    chassisName: chassis,
    scope: 'chassis',
    localports: true,
    logger,
  });
  sb.start();
  const launcher: ProxyLauncher =
    config.proxyMode === 'daemon'
      ? new DaemonLauncher(config.daemonControlSocket)
      : new ProcessLauncher({
          socketPath: config.socketPath,
          pidDir: config.externalPids,
          logDir: join(config.stateDir, 'logs'),
          proxyCommand: config.proxyCommand,
          user: config.proxyUser,
          group: config.proxyGroup,
          configFiles: config.proxyConfigFiles,
        });
  const provisioner = new OvnProvisioner({
    southbound: sb,
    ovs,
    launcher,
    namespacePrefix: config.namespacePrefix,
    ...(config.ovnBridge ? { bridge: config.ovnBridge } : {}),
    ...(config.ovsNamespace ? { hostNamespace: config.ovsNamespace } : {}),
    logger,
    retryMaxMs: config.retryMax * 1000,
    concurrency: config.concurrency,
    statusFile: join(config.stateDir, 'status.json'),
    ovsTimeoutMs: config.ovsTimeout * 1000,
  });
  const shutdown = async () => {
    await provisioner.close();
    await Promise.allSettled([sb.close(), ovs.close()]);
  };
  logger.info(
    {
      chassis,
      southbound: sb.client.remotes.map((r) => r.text),
      proxy: launcher.kind,
      prefix: config.namespacePrefix,
    },
    `${PROGRAM} starting`,
  );
  const started = provisioner.start();
  if (flags.once) {
    await started;
    const failed = provisioner.status().filter((s) => s.state !== 'provisioned');
    for (const f of failed) process.stderr.write(`${f.namespace}: ${f.state}: ${f.error ?? ''}\n`);
    await shutdown();
    logger.flush();
    process.exitCode = failed.length === 0 ? 0 : 3;
    return;
  }
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'resyncing');
    provisioner.resync().catch((err: unknown) => logger.error({ err }, 'resync crashed'));
  });
  stopOnSignals(logger, shutdown);
  await started;
  // Last: whoever waits for this line may rely on the first resync being done.
  logger.info({ networks: provisioner.status().length }, `${PROGRAM} running`);
  logger.flush();
}

runMain(PROGRAM, main);
