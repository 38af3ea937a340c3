/*
 * SIGHUP: read the configuration again (same flags, files, environment and secret files as at start) and
 * apply what can change while serving: the shared secret (a rotation), the log level, the readiness
 * window, the inventory file's contents, and with resolver = neutron the [neutron] credentials (changed
 * ones are used for a login at once, even while a refused login is being waited out; unchanged ones let a
 * catalog that lacked the network endpoint be read again at once). Options that need a restart (socket,
 * Nova address, resolver, cache sizes...) keep their running values and one warning names them.
 *
 * All or nothing: if the files do not load, the settings cannot be built from them (agentSettings, the same
 * function as at start: a file they name unreadable, incomplete credentials), or the inventory does not
 * parse, one error line says why and the running configuration stays, entirely. Nothing here touches the listening socket or a connection,
 * so no request is dropped; a request signs with whichever secret is current when it is forwarded.
 */
import { statSync } from 'node:fs';
import { type ConfigOf, type LoadedConfig, LogEvent, type Logger } from '@nmp/common';
import type { AgentMetrics } from './metrics.js';
import type { KeystoneAuthOptions, ReloadAction } from './neutron/keystone-session.js';
import { neutronResolverOptions, neutronSettings } from './neutron/settings.js';
import { agentSchema } from './options.js';
import type { Readiness } from './readiness.js';
import type { InventoryResolver } from './resolver/inventory-resolver.js';
import { agentSettings, effectiveLevel, readinessSettings } from './settings.js';
import type { InstanceSigner } from './signer.js';

export { effectiveLevel } from './settings.js';

export type AgentSchema = typeof agentSchema;
export type AgentConfig = ConfigOf<AgentSchema>;
type Key = keyof AgentSchema;

/** Options a reload applies; every other change waits for a restart. */
export const LIVE_OPTIONS: readonly Key[] = ['sharedSecret', 'logLevel', 'debug', 'readinessWindow'];

/** The [neutron] credentials: applied by a reload when resolver = neutron (a restart otherwise). */
export const NEUTRON_CREDENTIAL_OPTIONS: readonly Key[] = [
  'neutronAuthUrl',
  'neutronAuthType',
  'neutronUsername',
  'neutronUserId',
  'neutronPassword',
  'neutronProjectName',
  'neutronProjectId',
  'neutronUserDomainName',
  'neutronUserDomainId',
  'neutronProjectDomainName',
  'neutronProjectDomainId',
  'neutronApplicationCredentialId',
  'neutronApplicationCredentialName',
  'neutronApplicationCredentialSecret',
];

export interface ReloadTargets {
  readonly signer: InstanceSigner;
  readonly logger: Logger;
  /** Re-read on every reload when the resolver is the inventory. */
  readonly inventory?: InventoryResolver;
  readonly readiness?: Readiness;
  readonly metrics?: AgentMetrics;
  /** resolver = neutron: told the credentials after every reload (NeutronResolver.reloadCredentials). */
  readonly neutron?: { reloadCredentials(auth: KeystoneAuthOptions): ReloadAction };
}

export interface ReloadOutcome {
  readonly ok: boolean;
  /** Option names whose new value took effect. */
  readonly applied: readonly string[];
  /** Option names that changed but need a restart. */
  readonly restartNeeded: readonly string[];
  readonly error?: string;
}

export class ConfigReloader {
  readonly #load: () => LoadedConfig<AgentSchema>;
  readonly #t: ReloadTargets;
  #config: AgentConfig;
  #running: Promise<ReloadOutcome> | undefined;
  #queued: Promise<ReloadOutcome> | undefined;

  /** `load` repeats the start-up loadConfig call (same flags and environment). */
  constructor(load: () => LoadedConfig<AgentSchema>, initial: AgentConfig, targets: ReloadTargets) {
    this.#load = load;
    this.#config = initial;
    this.#t = targets;
  }

  /** The configuration in effect (restart-only options keep their start-up values). */
  get config(): AgentConfig {
    return this.#config;
  }

  /** Reload now, or right after the reload in progress (signals arriving meanwhile share that one). */
  reload(): Promise<ReloadOutcome> {
    if (this.#running === undefined) {
      this.#running = this.#reload().finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#queued ??= this.#running.then(() => {
      this.#queued = undefined;
      return this.reload();
    });
    return this.#queued;
  }

  async #reload(): Promise<ReloadOutcome> {
    const log = this.#t.logger;
    const old = this.#config;
    let loaded: LoadedConfig<AgentSchema>;
    try {
      loaded = this.#load();
      // The settings are built again as at start (agentSettings): a configuration that could not start
      // (incomplete new credentials, a file it names unreadable) fails the whole reload; the running one stays.
      const settings = agentSettings(loaded.config);
      if (this.#t.neutron && settings.resolver.kind !== 'neutron') neutronSettings(loaded.config);
      if (this.#t.inventory && loaded.config.inventoryFile === old.inventoryFile)
        await this.#t.inventory.reload();
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      log.error(
        { code: LogEvent.MDA_CONFIG_RELOAD_FAILED, error },
        'configuration reload failed; the running configuration is kept',
      );
      this.#t.metrics?.reloaded(false);
      return { ok: false, applied: [], restartNeeded: [], error };
    }
    const next = loaded.config;
    const applied: string[] = [];
    const restartNeeded: string[] = [];
    const merged: Record<string, unknown> = { ...old };
    const live = this.#t.neutron ? [...LIVE_OPTIONS, ...NEUTRON_CREDENTIAL_OPTIONS] : LIVE_OPTIONS;
    for (const key of Object.keys(agentSchema) as Key[]) {
      if (same(old[key], next[key])) continue;
      if (live.includes(key)) {
        merged[key] = next[key];
        applied.push(agentSchema[key].name);
      } else {
        restartNeeded.push(agentSchema[key].name);
      }
    }
    const config = Object.freeze(merged) as AgentConfig;
    this.#t.signer.setSecret(config.sharedSecret);
    log.level = effectiveLevel(config);
    if (this.#t.readiness) this.#t.readiness.windowMs = readinessSettings(config).windowMs;
    this.#config = config;
    this.#t.metrics?.reloaded(true);
    const keystone = this.#t.neutron?.reloadCredentials(neutronResolverOptions(config)) ?? 'none';

    logConfigWarnings(loaded, config, log);
    if (restartNeeded.length > 0) {
      log.warn(
        { code: LogEvent.MDA_CONFIG_RESTART_NEEDED, options: restartNeeded },
        'these options changed but take effect only after a restart; they keep their running values',
      );
    }
    log.info(
      {
        code: LogEvent.MDA_CONFIG_RELOADED,
        applied,
        files: loaded.files,
        ...(this.#t.inventory ? { inventory: config.inventoryFile } : {}),
        ...(keystone !== 'none' ? { keystone } : {}),
      },
      'configuration reloaded',
    );
    return { ok: true, applied, restartNeeded };
  }
}

/**
 * What an operator must see after every load (start and reload): unknown or deprecated options, the
 * options accepted without effect (one line), an empty secret, config files and secret files (the
 * `--<secret>-file` files, the Nova client key) anyone can read.
 */
export function logConfigWarnings(loaded: LoadedConfig<AgentSchema>, config: AgentConfig, log: Logger): void {
  for (const w of loaded.warnings) log.warn({ code: LogEvent.MDA_CONFIG_WARNING }, w);
  if (loaded.ignored.length > 0) {
    log.info(
      { code: LogEvent.MDA_CONFIG_IGNORED, options: loaded.ignored },
      'options accepted for compatibility with neutron; they have no effect here',
    );
  }
  if (config.sharedSecret === '') {
    log.warn(
      { code: LogEvent.MDA_CONFIG_EMPTY_SECRET },
      'metadata_proxy_shared_secret is empty: Nova cannot tell our requests from forged ones; set the same secret here and in nova.conf [neutron]',
    );
  }
  for (const file of loaded.files) {
    try {
      if ((statSync(file).mode & 0o004) !== 0) {
        log.warn(
          { code: LogEvent.MDA_CONFIG_WORLD_READABLE, file },
          'config file is world-readable and may hold the shared secret; chmod o-r it',
        );
      }
    } catch {
      // Already read successfully by the loader; a race here is not worth failing for.
    }
  }
  for (const f of loaded.exposedSecretFiles) {
    log.warn(
      { code: LogEvent.MDA_CONFIG_WORLD_READABLE, file: f.file, option: f.option, mode: f.mode.toString(8) },
      'secret file is world-readable; chmod o-r it',
    );
  }
}

function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}
