/*
 * What every command-line program here shares: yargs set up strictly (an unknown or malformed flag is a
 * one-line error and exit 2, not a wall of help), --version from the package, a top-level runner that
 * turns ConfigError and other start-up failures into that same one-line shape, and the orderly stop on
 * SIGTERM / SIGINT that every service makes.
 */
import yargs, { type Argv } from 'yargs';
import { ConfigError } from './config/load.js';
import type { Logger } from './logger.js';

export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function createCli(program: string, version: string, argv: readonly string[]): Argv {
  return yargs([...argv])
    .scriptName(program)
    .version(version)
    .help('help')
    .alias('help', 'h')
    .strict()
    .wrap(process.stdout.isTTY ? Math.min(120, process.stdout.columns) : null)
    .fail((msg, err) => {
      if (err) throw err;
      // Some of yargs' messages span lines ("Invalid values:\n  Argument: ..."): one line is the rule.
      throw new UsageError(
        msg
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '')
          .join(' '),
      );
    });
}

/** Run a program's main; print start-up errors as `program: message` and exit 2 (usage) or 1 (runtime). */
export function runMain(program: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`${program}: ${err.message}\n`);
      if (err instanceof UsageError) process.stderr.write(`Try '${program} --help'.\n`);
      process.exitCode = 2;
      return;
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`${program}: ${e?.message ?? String(err)}\n`);
    process.exitCode = 1;
  });
}

/**
 * SIGTERM and SIGINT stop the service once: a `stopping` line (with `fields()`, e.g. requests in flight),
 * then `shutdown`, then `stopped` and exit status 0, or `error while stopping` and 1. A second signal while
 * stopping changes nothing.
 */
export function stopOnSignals(
  logger: Logger,
  shutdown: () => Promise<unknown>,
  fields: () => Record<string, unknown> = () => ({}),
): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, ...fields() }, 'stopping');
    shutdown().then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exitCode = 0;
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
