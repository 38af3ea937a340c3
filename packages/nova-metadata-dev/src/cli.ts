#!/usr/bin/env node
/*
 * nova-metadata-dev: run the development Nova metadata API from the command line. Options come from
 * flags, --config-file and NMP_* variables through the shared config loader; the shared secret only
 * from --metadata-proxy-shared-secret-file, a config file or NMP_METADATA_PROXY_SHARED_SECRET.
 * Start-up problems (bad flag, unreadable file, bad address) are one line and exit status 2.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  addSchemaOptions,
  ConfigError,
  createCli,
  createLogger,
  loadConfig,
  opt,
  packageVersion,
  runMain,
} from '@nmp/common';
import { SAMPLE_INSTANCES_FILE } from './index.js';
import { InstancesFileError, loadInstances } from './instances.js';
import { createNovaMetadataServer } from './server.js';

const PROGRAM = 'nova-metadata-dev';

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const SCHEMA = {
  host: opt.string({
    name: 'host',
    default: '127.0.0.1',
    help: 'address to listen on',
    check: (v) => (isIP(v) !== 0 || HOSTNAME.test(v) ? undefined : 'not an IP address or host name'),
  }),
  port: opt.int({ name: 'port', default: 8775, min: 0, max: 65535, help: 'TCP port (0: any free port)' }),
  instances: opt.string({
    name: 'instances',
    default: SAMPLE_INSTANCES_FILE,
    help: 'JSON file with the instances to serve',
  }),
  service_metadata_proxy: opt.bool({
    name: 'service_metadata_proxy',
    default: true,
    help: "identify instances by the Neutron agent's signed headers (false: by the peer address)",
  }),
  dhcp_domain: opt.string({
    name: 'dhcp_domain',
    default: 'novalocal',
    help: "domain appended to hostnames without a dot ('' for none)",
  }),
  tls_cert: opt.string({ name: 'tls_cert', default: '', help: 'PEM certificate (chain): serve HTTPS' }),
  tls_key: opt.string({ name: 'tls_key', default: '', help: 'PEM private key for --tls-cert' }),
  tls_client_ca: opt.string({
    name: 'tls_client_ca',
    default: '',
    help: 'PEM CA bundle: require client certificates signed by it',
  }),
  log_level: opt.enum({
    name: 'log_level',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const,
    help: 'log level (one line per request at debug)',
  }),
  metadata_proxy_shared_secret: opt.string({
    name: 'metadata_proxy_shared_secret',
    default: '',
    secret: true,
    help: 'shared secret of the X-Instance-ID-Signature HMAC',
  }),
};

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(
      `--${flag} ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

async function main(): Promise<void> {
  const argv = await addSchemaOptions(
    createCli(PROGRAM, packageVersion(import.meta.url), process.argv.slice(2)),
    SCHEMA,
  )
    .usage(`${PROGRAM} [options]\n\nA Nova-compatible metadata API for development, tests and benchmarks.`)
    .parseAsync();
  const { config, warnings } = loadConfig(SCHEMA, { flags: argv, env: process.env });

  let instances: ReturnType<typeof loadInstances>;
  try {
    instances = loadInstances(config.instances);
  } catch (err) {
    if (err instanceof InstancesFileError) throw new ConfigError(err.message);
    throw err;
  }
  if ((config.tls_cert === '') !== (config.tls_key === ''))
    throw new ConfigError('--tls-cert and --tls-key must be given together');
  if (config.tls_client_ca !== '' && config.tls_cert === '')
    throw new ConfigError('--tls-client-ca needs --tls-cert and --tls-key');

  const logger = createLogger({ name: PROGRAM, level: config.log_level });
  for (const w of warnings) logger.warn(w);
  if (config.service_metadata_proxy && config.metadata_proxy_shared_secret === '') {
    logger.warn(
      'metadata_proxy_shared_secret is not configured, the metadata information returned by the proxy cannot be trusted',
    );
  }

  const nova = createNovaMetadataServer({
    instances,
    sharedSecret: config.metadata_proxy_shared_secret,
    serviceMetadataProxy: config.service_metadata_proxy,
    dhcpDomain: config.dhcp_domain,
    logger,
    ...(config.tls_cert !== ''
      ? {
          tlsCert: readPem('tls-cert', config.tls_cert),
          tlsKey: readPem('tls-key', config.tls_key),
          ...(config.tls_client_ca !== ''
            ? { tlsClientCa: readPem('tls-client-ca', config.tls_client_ca) }
            : {}),
        }
      : {}),
  });
  try {
    await nova.listen(config.port, config.host);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`cannot listen on ${config.host} port ${config.port}: ${e.code ?? e.message}`);
  }
  process.stdout.write(
    `${PROGRAM}: listening on ${nova.url} (${instances.length} instances from ${config.instances}, ` +
      `service_metadata_proxy=${config.service_metadata_proxy})\n`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    void nova.close().then(() => {
      logger.flush();
      process.exitCode = 0;
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

runMain(PROGRAM, main);
