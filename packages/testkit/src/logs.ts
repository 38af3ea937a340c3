/*
 * A logger that keeps what it writes, for tests that assert on log lines: the same pino setup as the
 * programs (createLogger, redaction included), written into memory instead of a file.
 */
import { readFileSync } from 'node:fs';
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

/**
 * The JSON log lines of a program's output or log file, in order: lines that do not start with `{` (a
 * stack trace, a CLI message) are skipped, and a line cut off mid-write (the file read while the program
 * writes) parses as `{}` rather than failing the caller.
 */
export function parseLogLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

/** parseLogLines of a log file; no lines while the file does not exist yet. */
export function logFileLines(file: string): Array<Record<string, unknown>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return parseLogLines(text);
}
