#!/usr/bin/env node
/*
 * metadata-agent: the per-node agent behind the proxies' UNIX socket. Reads neutron's metadata_agent.ini
 * (--config-file/--config-dir), flags override it; the shared secret comes from the file, the environment
 * (NMP_METADATA_PROXY_SHARED_SECRET) or --metadata-proxy-shared-secret-file, never from a flag.
 */
import { statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { addSchemaOptions, createCli, createLogger, describeConfig, loadConfig, runMain } from '@nmp/common';
import { MetadataAgent } from './agent.js';
import { AGENT_COMPAT, agentSchema, socketModeFor } from './options.js';
import { createResolver } from './resolver-factory.js';
import { VERSION } from './version.js';

const PROGRAM = 'metadata-agent';

async function main(): Promise<void> {
  const cli = addSchemaOptions(
    createCli(PROGRAM, VERSION, process.argv.slice(2)).usage(
      '$0 [options]\n\n' +
        'Serve instance metadata requests arriving from ns-metadata-proxy on a UNIX socket: look up the port, ' +
        "sign the instance id and forward to Nova's metadata API.\n\n" +
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
  const loaded = loadConfig(agentSchema, { flags, env: process.env, compat: AGENT_COMPAT });
  const config = loaded.config;
  if (flags['print-config']) {
    process.stdout.write(describeConfig(agentSchema, loaded));
    return;
  }
  process.title = PROGRAM;
  const logger = createLogger({
    name: PROGRAM,
    level: config.debug ? 'debug' : config.logLevel,
    ...(config.logFile ? { file: config.logFile } : {}),
  });
  for (const w of loaded.warnings) logger.warn({ code: 'MDA_CONFIG_WARNING' }, w);
  if (config.sharedSecret === '') {
    logger.warn(
      { code: 'MDA_CONFIG_EMPTY_SECRET' },
      'metadata_proxy_shared_secret is empty: Nova cannot tell our requests from forged ones; set the same secret here and in nova.conf [neutron]',
    );
  }
  for (const file of loaded.files) {
    try {
      if ((statSync(file).mode & 0o004) !== 0) {
        logger.warn(
          { code: 'MDA_CONFIG_WORLD_READABLE', file },
          'config file is world-readable and may hold the shared secret; chmod o-r it',
        );
      }
    } catch {
      // Already read successfully by the loader; a race here is not worth failing for.
    }
  }

  const me = userInfo();
  const resolver = await createResolver(config, logger);
  const agent = new MetadataAgent({
    socketPath: config.socketPath,
    socketMode: socketModeFor(config.socketMode, config.proxyUser, config.proxyGroup, {
      uid: me.uid,
      gid: me.gid,
      user: me.username,
      group: String(me.gid),
    }),
    backlog: config.backlog,
    sharedSecret: config.sharedSecret,
    resolver,
    logger,
    maxBodySize: config.maxBodySize,
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
  await agent.listen();
  logger.info(
    { socket: config.socketPath, nova: agent.nova.origin, resolver: config.resolver, version: VERSION },
    'metadata-agent listening',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, inFlight: agent.handler.inFlight }, 'stopping');
    agent
      .close(10_000)
      .then(() => {
        logger.info('stopped');
        logger.flush();
        process.exitCode = 0;
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exitCode = 1;
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

runMain(PROGRAM, main);
