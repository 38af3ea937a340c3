#!/usr/bin/env node
/*
 * openstack-fakes: serve a fake Keystone v3 + Neutron from a ports file (the agent inventory format,
 * {"ports": [...]}) for benchmarks and manual runs. Prints the base URL on the first line of stdout
 * (auth_url is that URL + /v3); SIGHUP re-reads the ports file; SIGINT/SIGTERM stop it.
 * The fake's password and application credential secret come from the environment
 * (OPENSTACK_FAKES_PASSWORD, OPENSTACK_FAKES_APPCRED_SECRET), never from flags.
 */
import { readFile } from 'node:fs/promises';
import { createCli, packageVersion, runMain, UsageError } from '@nmp/common';
import { createFakeOpenStack } from './fake-openstack.js';
import { FAKE_DEFAULTS } from './keystone.js';
import type { FakePort } from './neutron-ports.js';
import { TEST_SERVER_CERT, TEST_SERVER_KEY } from './test-tls.js';

const PROGRAM = 'openstack-fakes';

async function loadPorts(file: string | undefined): Promise<FakePort[]> {
  if (file === undefined) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--ports ${file}: ${(err as Error).message}`);
  }
  const ports = (doc as { ports?: unknown })?.ports;
  if (!Array.isArray(ports)) throw new UsageError(`--ports ${file}: expected {"ports": [...]}`);
  return ports as FakePort[];
}

async function main(): Promise<void> {
  const argv = await createCli(PROGRAM, packageVersion(import.meta.url), process.argv.slice(2))
    .usage('$0 [--ports FILE] [--latency-ms N]\n\nServe a fake Keystone v3 + Neutron ports API.')
    .option('ports', { type: 'string', describe: 'ports file, {"ports": [...]} (agent inventory format)' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
    .option('port', { type: 'number', default: 0, describe: 'port to listen on (0: any free port)' })
    .option('latency-ms', { type: 'number', default: 0, describe: 'delay before every Neutron answer' })
    .option('keystone-latency-ms', {
      type: 'number',
      default: 0,
      describe: 'delay before every Keystone answer',
    })
    .option('token-ttl', { type: 'number', default: 3600, describe: 'token lifetime in seconds' })
    .option('region', {
      type: 'string',
      array: true,
      default: [FAKE_DEFAULTS.region],
      describe: 'catalog regions',
    })
    .option('username', {
      type: 'string',
      default: FAKE_DEFAULTS.username,
      describe: 'user (domain Default)',
    })
    .option('project-name', {
      type: 'string',
      default: FAKE_DEFAULTS.projectName,
      describe: 'project (domain Default)',
    })
    .option('role', {
      type: 'string',
      default: 'admin',
      describe: 'role of the user (admin/service see all ports)',
    })
    .option('application-credential-id', {
      type: 'string',
      default: FAKE_DEFAULTS.applicationCredentialId,
      describe: 'id of the application credential',
    })
    .option('tls', {
      type: 'boolean',
      default: false,
      describe: 'serve HTTPS with the built-in test certificate',
    })
    .parseAsync();

  const file = argv.ports;
  const regions = argv.region.map(String);
  const projectId = FAKE_DEFAULTS.projectId;
  const fake = createFakeOpenStack({
    ports: await loadPorts(file),
    host: argv.host,
    port: argv.port,
    latencyMs: argv['latency-ms'],
    keystoneLatencyMs: argv['keystone-latency-ms'],
    tokenTtlSeconds: argv['token-ttl'],
    regions,
    projects: [{ id: projectId, name: argv['project-name'] }],
    users: [
      {
        name: argv.username,
        password: process.env.OPENSTACK_FAKES_PASSWORD ?? FAKE_DEFAULTS.password,
        roles: [argv.role],
      },
    ],
    applicationCredentials: [
      {
        id: argv['application-credential-id'],
        secret: process.env.OPENSTACK_FAKES_APPCRED_SECRET ?? FAKE_DEFAULTS.applicationCredentialSecret,
        userName: argv.username,
        projectId,
      },
    ],
    ...(argv.tls ? { tls: { key: TEST_SERVER_KEY, cert: TEST_SERVER_CERT } } : {}),
  });
  const url = await fake.listen();
  process.stdout.write(`${url}\n`);
  process.stderr.write(
    `${PROGRAM}: ${fake.ports.length} ports; auth_url ${fake.authUrl}; user ${argv.username}, ` +
      `project ${argv['project-name']} (domain Default); regions ${regions.join(',')}\n`,
  );

  process.on('SIGHUP', () => {
    loadPorts(file).then(
      (ports) => {
        fake.setPorts(ports);
        process.stderr.write(`${PROGRAM}: reloaded ${ports.length} ports\n`);
      },
      (err: unknown) =>
        process.stderr.write(`${PROGRAM}: reload failed, keeping old ports: ${String(err)}\n`),
    );
  });
  const stop = () => {
    fake.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

runMain(PROGRAM, main);
