/*
 * What every command-line program here shares: yargs set up strictly (an unknown or malformed flag is a
 * one-line error and exit 2, not a wall of help), --version from the package, a top-level runner that
 * turns ConfigError and other start-up failures into that same one-line shape, and the orderly stop on
 * SIGTERM / SIGINT that every service makes.
 */
import yargs, { type Argv } from 'yargs';
import { ConfigError } from './config/load.js';
import type { ProgramErrorCode } from './errors.js';
import { type PassedDescriptor, type Successor, startSuccessor } from './handover.js';
import { LogEvent } from './log-events.js';
import type { Logger } from './logger.js';

export class UsageError extends Error {
  readonly code = 'NMP_ERR_USAGE' satisfies ProgramErrorCode;
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

/** How a service hands its listeners to a successor (handover.ts) on SIGUSR2. */
export interface HandOverSteps {
  /** The listening sockets (and other descriptors) to pass on, named, in order. */
  readonly descriptors: () => readonly PassedDescriptor[];
  /**
   * Stop once the successor serves: stop accepting, finish what is in flight, but leave the sockets and
   * their paths alone, they are the successor's now.
   */
  readonly retire: () => Promise<unknown>;
  /** How long the successor may take to serve (default 30 s). */
  readonly timeoutMs?: number;
  /** What else the successor needs before it can serve (the daemon's attachments and their sockets). */
  readonly handOff?: (successor: Successor) => Promise<void>;
  /** The hand-over failed after handOff began: serve as before. */
  readonly resume?: () => Promise<void>;
}

/**
 * SIGTERM and SIGINT stop the service once: a `stopping` line (with `fields()`, e.g. requests in flight),
 * then `shutdown`, then `stopped` and exit status 0, or `error while stopping` and 1. A second signal while
 * stopping changes nothing.
 *
 * With `handOver`, SIGUSR2 replaces the process without closing its listeners: a successor is started
 * with them (the code and configuration on disk now), and once it serves this process retires. If the
 * successor fails, this process keeps serving and says why.
 */
export function stopOnSignals(
  logger: Logger,
  shutdown: () => Promise<unknown>,
  fields: () => Record<string, unknown> = () => ({}),
  handOver?: HandOverSteps,
): void {
  let stopping = false;
  const finish = (work: Promise<unknown>) =>
    work.then(
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
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, ...fields() }, 'stopping');
    void finish(shutdown());
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (!handOver) return;
  process.on('SIGUSR2', () => {
    if (stopping) return;
    stopping = true;
    const fds = handOver.descriptors();
    logger.info(
      { signal: 'SIGUSR2', listeners: fds.map((d) => d.name), ...fields() },
      'handing over to a new process',
    );
    let successor: Successor;
    try {
      successor = startSuccessor({ fds, timeoutMs: handOver.timeoutMs ?? 30_000 });
    } catch (err) {
      stopping = false;
      logger.error({ code: LogEvent.NMP_HANDOVER_FAILED, err }, 'hand-over failed; still serving');
      return;
    }
    const handedOff = handOver.handOff ? handOver.handOff(successor) : Promise.resolve();
    Promise.all([handedOff, successor.ready]).then(
      () => {
        successor.release();
        logger.info(
          { code: LogEvent.NMP_HANDED_OVER, successor: successor.pid, ...fields() },
          'handed over; retiring',
        );
        void finish(handOver.retire());
      },
      (err: unknown) => {
        try {
          process.kill(successor.pid, 'SIGKILL');
        } catch {
          // gone already
        }
        logger.error(
          { code: LogEvent.NMP_HANDOVER_FAILED, successor: successor.pid, error: (err as Error).message },
          'hand-over failed; still serving',
        );
        void (handOver.resume?.() ?? Promise.resolve()).then(
          () => {
            stopping = false;
          },
          (e: unknown) => logger.error({ err: e }, 'could not resume after the failed hand-over'),
        );
      },
    );
  });
}
