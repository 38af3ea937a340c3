/*
 * A logger that keeps what it writes, for tests that assert on log lines: the same pino setup as the
 * programs (createLogger, redaction included), written into memory instead of a file.
 */
import { createLogger, type Logger } from '@nmp/common';

export interface LogCapture {
  readonly logger: Logger;
  /** Every line so far, parsed. */
  readonly lines: () => Array<Record<string, unknown>>;
  /** Everything written so far, as text (to search for things that must never appear). */
  readonly text: () => string;
}

export function captureLogs(name = 'test'): LogCapture {
  const chunks: string[] = [];
  const logger = createLogger({ name, level: 'debug' }, { write: (s: string) => void chunks.push(s) });
  return {
    logger,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
