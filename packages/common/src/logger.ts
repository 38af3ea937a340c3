/*
 * The one way every process makes its logger: pino, JSON lines on stdout (or a file), with the paths
 * that could ever hold a secret redacted. Request-scoped bindings come from child loggers.
 */
import { createRequire } from 'node:module';
import type PinoModule from 'pino';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';

// A CommonJS package loaded with require, not import: an ES module importing CommonJS makes node compile
// its CommonJS export scanner (WebAssembly) once per process: 4 MB resident in isolation, 1-2 MB in the proxy.
// Loaded when the first logger is made, not with @nmp/common: a program that never logs through pino
// (metadata-hooks, any --help) does not pay its ~8 MB and ~20 ms.
let pinoModule: typeof PinoModule | undefined;
let chindingsSym: symbol;
let streamSym: symbol;
function pino(): typeof PinoModule {
  if (pinoModule === undefined) {
    pinoModule = createRequire(import.meta.url)('pino') as typeof PinoModule;
    ({ chindingsSym, streamSym } = pinoModule.symbols);
  }
  return pinoModule;
}

/**
 * Paths censored in every log line, whatever logged them. Exact paths only: wildcard paths make pino
 * walk every object of every line, which showed up as the agent's largest cost of our own in profiles.
 * Secrets are kept out of log objects by construction (configuration is never logged whole; see
 * describeConfig for the masked printout); these paths are the second line of defence.
 */
export const REDACT_PATHS: readonly string[] = [
  'secret',
  'password',
  'sharedSecret',
  'shared_secret',
  'metadata_proxy_shared_secret',
  'config.metadata_proxy_shared_secret',
  'config.password',
  'config.application_credential_secret',
  'application_credential_secret',
  'token',
  'headers["x-instance-id-signature"]',
  'headers["x-auth-token"]',
  'headers["x-subject-token"]',
  'headers["x-aws-ec2-metadata-token"]',
  'req.headers["x-instance-id-signature"]',
  'req.headers["x-auth-token"]',
];

export interface LoggerSettings {
  readonly name: string;
  readonly level?: string;
  /** Destination file; stdout when absent. */
  readonly file?: string;
  /** Extra bindings on every line (e.g. the network id a proxy serves). */
  readonly base?: Record<string, unknown>;
}

export type { Logger };

/** pino's ISO timestamp, formatted once per millisecond instead of once per line. */
let lastMs = 0;
let lastStamp = '';
function isoTimeCached(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastStamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastStamp;
}

export function createLogger(settings: LoggerSettings, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    name: settings.name,
    level: settings.level ?? 'info',
    base: { pid: process.pid, ...settings.base },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    timestamp: isoTimeCached,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (destination) return pino()(options, destination);
  // Lines are gathered into writes of up to 8 KiB instead of one write per request (that write was the
  // largest single cost of both hot paths in profiles); a timer pushes out what waits, so a line is out
  // within FLUSH_MS, and pino writes what is left synchronously when the process exits.
  const dest = pino().destination({
    dest: settings.file ? settings.file : 1,
    mkdir: settings.file !== undefined,
    sync: false,
    minLength: 8192,
  });
  setInterval(flushQuietly, FLUSH_MS, dest).unref();
  return pino()(options, dest);
}

const FLUSH_MS = 100;

function flushQuietly(dest: { flush(cb?: (err?: Error) => void): void }): void {
  try {
    dest.flush(() => {});
  } catch {
    // Flushing while a write is already in progress is refused; the next tick takes it.
  }
}

const INFO = 30;

/**
 * Write an info line whose fields the caller has already serialised (`"rid":"req-1","status":200`),
 * exactly as `logger.info({...}, msg)` would print it from a logger made by createLogger (level, time,
 * the logger's bindings, the fields, msg). For the one line per request: pino's generic serialisation
 * and its redaction pass were the largest part of logging left in profiles. The caller must only pass
 * fields that hold nothing to redact, every string through JSON.stringify.
 */
export function writeInfoLine(logger: Logger, fields: string, msgJson: string): void {
  if (logger.levelVal > INFO) return;
  const l = logger as unknown as Record<symbol, unknown>;
  (l[streamSym] as { write(line: string): unknown }).write(
    `{"level":"info"${isoTimeCached()}${l[chindingsSym] as string},${fields},"msg":${msgJson}}\n`,
  );
}

/**
 * Add a failure's details to a request's log line without letting them replace the line's own fields.
 * The line says what the instance got (`status`, `code`); a detail of the same name says something else
 * (the `status` Keystone or Neutron answered the agent), so it goes in as `upstreamStatus` (`detailX` when
 * the details name no upstream). Returns the line.
 */
export function addDetails(
  line: Record<string, unknown>,
  details: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const prefix = details.upstream !== undefined ? 'upstream' : 'detail';
  for (const key of Object.keys(details)) {
    const value = details[key];
    if (line[key] === undefined) line[key] = value;
    else if (line[key] !== value) line[`${prefix}${key[0]!.toUpperCase()}${key.slice(1)}`] = value;
  }
  return line;
}

/** A logger that drops everything (tests and library use without a logger). */
export function silentLogger(): Logger {
  return pino()({ level: 'silent' });
}
