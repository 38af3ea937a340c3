/*
 * What every command-line program here shares: yargs set up strictly (an unknown or malformed flag is a
 * one-line error and exit 2, not a wall of help), --version from the package, and a top-level runner
 * that turns ConfigError and other start-up failures into that same one-line shape.
 */
import yargs, { type Argv } from 'yargs';
import { ConfigError } from './config/load.js';

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
