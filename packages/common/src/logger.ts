/*
 * The one way every process makes its logger: pino, JSON lines on stdout (or a file), with the paths
 * that could ever hold a secret redacted. Request-scoped bindings come from child loggers.
 */
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type PinoModule from 'pino';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import { HEADER_SIGNATURE } from './identity-headers.js';

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
  `headers["${HEADER_SIGNATURE}"]`,
  'headers["x-auth-token"]',
  'headers["x-subject-token"]',
  'headers["x-aws-ec2-metadata-token"]',
  `req.headers["${HEADER_SIGNATURE}"]`,
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

/**
 * pino's ISO timestamp field, formatted once per millisecond instead of once per line, and from a prefix
 * formatted once per second (`,"time":"2026-12-07T21:03:04.`): a new millisecond only appends its three
 * digits, which is what toISOString prints (isoTimeField, tested against it).
 */
let lastMs = 0;
let lastStamp = '';
let secondStart = Number.NaN;
let secondPrefix = '';
function isoTimeCached(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastStamp = isoTimeField(now);
  }
  return lastStamp;
}

/** `,"time":"<new Date(ms).toISOString()>"`, for a whole number of milliseconds. */
export function isoTimeField(ms: number): string {
  const inSecond = ms - secondStart;
  if (!(inSecond >= 0 && inSecond < 1000)) {
    secondStart = ms - (((ms % 1000) + 1000) % 1000);
    const iso = new Date(secondStart).toISOString();
    secondPrefix = `,"time":"${iso.slice(0, iso.length - 4)}`; // up to the '.' before "000Z"
    return isoTimeField(ms);
  }
  return `${secondPrefix}${inSecond < 10 ? '00' : inSecond < 100 ? '0' : ''}${inSecond}Z"`;
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
  // pino's file stream (sonic-boom) writes asynchronously, off the event loop, and writes what it holds
  // synchronously when the process exits. Lines reach it in chunks (LineBatch) rather than one by one.
  const sink = pino().destination({
    dest: settings.file ? settings.file : 1,
    mkdir: settings.file !== undefined,
    sync: false,
    minLength: 0,
  }) as unknown as FileSink;
  const batch = new LineBatch(sink);
  setInterval(pushBatch, FLUSH_MS, batch).unref();
  return pino()(options, batch as unknown as DestinationStream);
}

/** Lines wait at most this long in memory before they are handed to the file stream. */
const FLUSH_MS = 100;
/** Characters gathered before they are handed on at once. */
const CHUNK_CHARS = 16 * 1024;

/** What LineBatch uses of pino's sonic-boom stream. */
interface FileSink {
  readonly fd: number;
  readonly destroyed: boolean;
  write(data: string): boolean;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/**
 * The lines of one logger, gathered into a string and handed to the file stream in chunks of about 16 KiB
 * (and whatever waits, every FLUSH_MS), which it writes with one system call each. Handing it each line
 * made it measure the UTF-8 length of everything it already held on every line (Buffer.byteLength of a
 * string growing to 8 KiB): about 4 µs per line, the largest cost of logging in the proxy and the agent.
 * Order is kept (every line of the logger, pino's and writeInfoLine's, goes through here). At exit the
 * process has no event loop left: the stream writes what it holds, then the batch what is left, both
 * synchronously, before pino's own exit handler ends the stream.
 */
class LineBatch {
  readonly sink: FileSink;
  #pending = '';

  constructor(sink: FileSink) {
    this.sink = sink;
    process.prependListener('exit', () => this.flushSync());
    process.prependListener('beforeExit', () => this.push());
  }

  write(line: string): boolean {
    this.#pending += line;
    if (this.#pending.length >= CHUNK_CHARS) this.push();
    return true;
  }

  /** Hand what waits to the stream, which writes it (asynchronously) at once. */
  push(): void {
    if (this.#pending === '' || this.sink.destroyed) return;
    const chunk = this.#pending;
    this.#pending = '';
    this.sink.write(chunk);
  }

  /** pino's logger.flush(). */
  flush(cb?: (err?: Error) => void): void {
    this.push();
    this.sink.flush(cb);
  }

  /** Everything out now, synchronously: the stream's queue, then what waits here (in that order). */
  flushSync(): void {
    if (this.sink.destroyed) return;
    const rest = this.#pending;
    this.#pending = '';
    try {
      this.sink.flushSync();
      if (rest !== '') writeAllSync(this.sink.fd, rest);
    } catch {
      // The stream is not open (yet) or its file is gone: nothing more can be done at exit.
    }
  }
}

function writeAllSync(fd: number, text: string): void {
  let buf = Buffer.from(text);
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(fd, buf));
    } catch (err) {
      // A non-blocking pipe that is full: wait for the reader rather than drop the last lines.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

function pushBatch(batch: LineBatch): void {
  batch.push();
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
