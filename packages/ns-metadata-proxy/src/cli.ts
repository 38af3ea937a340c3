#!/usr/bin/env node
/*
 * ns-metadata-proxy: runs inside a qdhcp-/qrouter- namespace, listens where instances send metadata
 * requests and forwards them to the metadata agent's UNIX socket with the network or router id stamped.
 *
 * Its listening sockets may be passed in instead of bound: by systemd (nmp-ns-metadata-proxy@.socket,
 * created in the namespace) or by the proxy it replaces (SIGUSR2, handover.ts). A successor runs as the
 * user its predecessor dropped to; it writes its pid through the pid file descriptor the first proxy
 * opened as root, since it could not open the file any more.
 */
import { ftruncateSync, openSync, unlinkSync, writeSync } from 'node:fs';
import {
  ADMIN_UNIX,
  addSchemaOptions,
  type BindAddress,
  BindSpecError,
  ConfigError,
  type ConfigOf,
  createCli,
  createLogger,
  describeConfig,
  formatAddress,
  formatHostPort,
  InheritedListeners,
  type LoadedConfig,
  LogEvent,
  loadConfig,
  type PassedDescriptor,
  parseBind,
  runMain,
  stopOnSignals,
  takeInheritedListeners,
  takePredecessor,
  UsageError,
} from '@nmp/common';
import { HaproxyConfigError, type HaproxyMetadataConfig, readHaproxyConfig } from './haproxy-config.js';
import type { ProxyAdminServer } from './metrics.js';
import { ID_OPTIONS, proxyIdentity, proxyOptions } from './options.js';
import { dropPrivileges } from './privileges.js';
import { MetadataProxy } from './proxy.js';
import { RateLimiter } from './rate-limiter.js';
import { describeServing, servingSettings } from './serving-settings.js';
import { createSsrfPolicy, SSRF_REFUSAL_REASONS } from './ssrf/policy.js';
import { VERSION } from './version.js';

const PROGRAM = 'ns-metadata-proxy';

async function main(): Promise<void> {
  const cli = addSchemaOptions(
    createCli(PROGRAM, VERSION, process.argv.slice(2)).usage(
      `$0 --bind ADDRESS:PORT [--bind ...] (--network-id ID | --router-id ID | --ovn-network-id ID) [options]\n\n` +
        `Accept instance metadata requests, strip every identity header the instance sent, stamp\n` +
        `X-Forwarded-For and the network or router id, and forward to the metadata agent's UNIX socket.\n\n` +
        `Examples:\n` +
        `  $0 --bind 169.254.169.254:80 --bind '[fe80::a9fe:a9fe%tap0]:80' --network-id NET\n` +
        `  $0 --bind '[::]:9697' --router-id ROUTER\n` +
        `  $0 --bind 169.254.169.254:80 --ovn-network-id NET\n` +
        `  $0 --haproxy-config /var/lib/neutron/ns-metadata-proxy/NET.conf`,
    ),
    proxyOptions,
  ).option('print-config', { type: 'boolean', describe: 'print the effective configuration and exit' });
  const flags = await cli.parseAsync();
  const loaded = loadConfig(proxyOptions, { flags, env: process.env });
  const config = await withHaproxyConfig(loaded);
  if (flags['print-config']) {
    process.stdout.write(describeConfig(proxyOptions, loaded));
    return;
  }

  const identity = proxyIdentity(config);
  // Read first, so that nothing started later inherits the variables.
  const inherited = new InheritedListeners(takeInheritedListeners());
  const predecessor = takePredecessor();
  const pidFd = inherited.take(PID_FILE_FD);
  const adminFd = inherited.take(ADMIN_UNIX);
  // Every other passed descriptor is a listening socket (named 'listen' by a predecessor, after the
  // .socket unit by systemd).
  const passed = inherited.takeAll();
  if (config.bind.length === 0 && passed.length === 0)
    throw new UsageError('at least one --bind ADDRESS:PORT is required');
  let binds: BindAddress[];
  try {
    binds = config.bind.map((b) => parseBind(b));
  } catch (err) {
    if (err instanceof BindSpecError) throw new UsageError(err.message);
    throw err;
  }

  const logger = createLogger({
    name: PROGRAM,
    level: config.debug ? 'debug' : config.logLevel,
    ...(config.logFile ? { file: config.logFile } : {}),
  });
  const serving = servingSettings(config);
  const ssrf = serving.ssrf ? createSsrfPolicy(serving.ssrf) : undefined;
  for (const w of [...loaded.warnings, ...serving.warnings, ...(ssrf?.warnings ?? [])])
    logger.warn({ code: LogEvent.MDP_CONFIG_WARNING }, w);
  const limiter = serving.rateLimit ? new RateLimiter(serving.rateLimit) : undefined;
  // The metrics code is loaded only when there is an admin socket to serve it.
  const metricsModule = serving.adminSocket === '' ? undefined : await import('./metrics.js');
  const metrics =
    metricsModule === undefined
      ? undefined
      : new metricsModule.ProxyMetrics({
          mode: identity.mode,
          id: identity.id,
          version: VERSION,
          defaultMetrics: true,
          extraReasons: SSRF_REFUSAL_REASONS,
        });

  const proxy = new MetadataProxy({
    identity,
    binds,
    socketPath: config.socketPath,
    logger,
    limits: serving.limits,
    ...(limiter ? { admit: limiter.admit } : {}),
    ...(ssrf ? { ssrf: ssrf.policy } : {}),
    ...(metrics ? { metrics } : {}),
  });
  let addresses: Awaited<ReturnType<MetadataProxy['listen']>>;
  try {
    addresses = await proxy.listen(passed);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    throw new ConfigError(`cannot listen on ${e.address ?? '?'}:${e.port ?? '?'}: ${e.code ?? e.message}`);
  }
  let admin: ProxyAdminServer | undefined;
  if (metrics) {
    metrics.setSources({ connections: () => proxy.connections, inFlight: () => proxy.handler.inFlight });
    // Bound before dropping root (the socket's directory is usually root's); a UNIX socket is reachable
    // only through the file system, never from the tenant network this proxy listens on.
    admin = new metricsModule!.ProxyAdminServer({ socketPath: serving.adminSocket, metrics });
    try {
      await admin.listen(adminFd);
    } catch (err) {
      await proxy.close(0);
      throw err;
    }
  }
  // Opened while still root and kept: a successor (unprivileged by then) writes its pid through it.
  const pidFile = config.pidFile === '' ? undefined : (pidFd ?? openSync(config.pidFile, 'w', 0o644));
  if (pidFile !== undefined) writePid(pidFile);
  const ids = dropPrivileges(config.user, config.group);
  // The title replaces argv in /proc/<pid>/cmdline, where neutron and the hooks look for the id: keep the
  // id stamped, and with --haproxy-config the file (named after the network even when a router id is stamped).
  process.title =
    config.haproxyConfig !== ''
      ? `${PROGRAM} ${identity.mode} ${identity.id} -f ${config.haproxyConfig}`
      : `${PROGRAM} ${identity.mode} ${identity.id}`;
  const result = proxy.listenResult;
  for (const a of result?.unused ?? [])
    logger.warn(
      { code: LogEvent.MDP_CONFIG_WARNING, address: formatAddress(a) },
      'a passed listening socket matches no bind; closed',
    );
  await predecessor?.ready(logger);
  logger.info(
    {
      listen: addresses.map(formatAddress),
      ...(result && result.inherited > 0
        ? { inherited: `${result.inherited} (${predecessor ? 'hand-over' : 'systemd'})` }
        : {}),
      agent: config.socketPath,
      uid: ids.uid,
      gid: ids.gid,
      ...describeServing(serving),
      ...(admin ? { admin: admin.socketPath } : {}),
      version: VERSION,
    },
    'ns-metadata-proxy listening',
  );
  // Supervisors and operators wait for this line: out at once, not with the next batch.
  logger.flush();

  stopOnSignals(
    logger,
    async () => {
      await Promise.all([proxy.close(10_000), admin?.close()]);
      if (config.pidFile !== '') {
        try {
          unlinkSync(config.pidFile);
        } catch {
          // After dropping root the pid file's directory may not be ours; a stale file is harmless.
        }
      }
    },
    () => ({ inFlight: proxy.handler.inFlight }),
    {
      descriptors: () => {
        const fds: PassedDescriptor[] = [...proxy.descriptors(), ...(admin?.descriptors() ?? [])];
        if (pidFile !== undefined) fds.push({ name: PID_FILE_FD, fd: pidFile });
        return fds;
      },
      // The sockets, the admin socket's path and the pid file (with the successor's pid) are its now.
      retire: () => Promise.all([proxy.close(10_000), admin?.close({ keepPaths: true })]),
    },
  );
}

/** The name of the pid file's descriptor in a hand-over. */
const PID_FILE_FD = 'pidfile';

function writePid(fd: number): void {
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
}

/**
 * Settings from neutron's generated haproxy file fill in whatever was not given explicitly
 * (flags, config files and the environment still win).
 */
async function withHaproxyConfig(
  loaded: LoadedConfig<typeof proxyOptions>,
): Promise<ConfigOf<typeof proxyOptions>> {
  const config = loaded.config;
  if (config.haproxyConfig === '') return config;
  let h: HaproxyMetadataConfig;
  try {
    h = await readHaproxyConfig(config.haproxyConfig);
  } catch (err) {
    if (err instanceof HaproxyConfigError) throw new ConfigError(`--haproxy-config ${err.message}`);
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`--haproxy-config ${config.haproxyConfig}: cannot read: ${e.code ?? e.message}`);
  }
  const unset = (key: keyof typeof proxyOptions) => loaded.origins[key] === 'default';
  const seconds = (ms: number) => Math.max(1, Math.round(ms / 1000));
  const merged: Record<string, unknown> = { ...config };
  if (unset('bind') && unset('networkId') && unset('routerId') && unset('ovnNetworkId')) {
    merged.bind = h.binds.map((b) => formatHostPort(b.host, b.port, b.interface));
    merged[ID_OPTIONS[h.mode]] = h.id;
  }
  if (unset('socketPath')) merged.socketPath = h.socketPath;
  if (unset('pidFile') && h.pidFile) merged.pidFile = h.pidFile;
  if (unset('user') && h.user) merged.user = h.user;
  if (unset('group') && h.group) merged.group = h.group;
  if (unset('maxConnections') && h.maxConn) merged.maxConnections = h.maxConn;
  if (unset('timeoutHttpRequest')) merged.timeoutHttpRequest = seconds(h.timeouts.httpRequest);
  if (unset('timeoutHttpKeepAlive')) merged.timeoutHttpKeepAlive = seconds(h.timeouts.keepAlive);
  if (unset('timeoutServer')) merged.timeoutServer = seconds(h.timeouts.server);
  if (unset('timeoutClient')) merged.timeoutClient = seconds(h.timeouts.client);
  if (unset('timeoutConnect')) merged.timeoutConnect = seconds(h.timeouts.connect);
  if (h.logLevel === 'debug' && unset('debug')) merged.debug = true;
  // The file's stick-table type (ip or ipv6) is not copied: neutron can only name one family, and
  // we limit both unless ip_versions says otherwise (DECISIONS.md, rate limiting).
  if (h.rateLimit && unset('rateLimitEnabled')) {
    merged.rateLimitEnabled = true;
    merged.baseWindow = h.rateLimit.baseWindow;
    merged.baseLimit = h.rateLimit.baseLimit;
    merged.burstWindow = h.rateLimit.burstWindow;
    merged.burstLimit = h.rateLimit.burstLimit;
  }
  return Object.freeze(merged) as ConfigOf<typeof proxyOptions>;
}

runMain(PROGRAM, main);
