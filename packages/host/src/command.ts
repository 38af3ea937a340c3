/*
 * Running `ip`, `iptables-restore` and friends: one place that turns a failed command into an error that
 * says which command, in which namespace, and what it printed. Arguments are always an argv array (no
 * shell), so ids and device names cannot inject anything.
 */
import { execFile } from 'node:child_process';
import type { ProgramErrorCode } from '@nmp/common';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandError extends Error {
  readonly code = 'NMP_ERR_COMMAND' satisfies ProgramErrorCode;
  constructor(
    readonly argv: readonly string[],
    readonly result: CommandResult,
  ) {
    const detail = result.stderr.trim() || result.stdout.trim();
    super(`'${argv.join(' ')}' failed (exit ${result.code})${detail ? `: ${detail.slice(0, 2000)}` : ''}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  readonly input?: string;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  readonly allowFailure?: boolean;
  readonly timeoutMs?: number;
}

export function run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      {
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
        timeout: options.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL',
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown }) | null;
        if (e && typeof e.code === 'string') {
          reject(new Error(`cannot run '${argv[0]}': ${e.code}`));
          return;
        }
        const result = { code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, stdout, stderr };
        if (result.code !== 0 && !options.allowFailure) reject(new CommandError(argv, result));
        else resolve(result);
      },
    );
    // A command that exits without reading its input must not turn into an EPIPE crash here.
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
  });
}

/** argv that runs `argv` inside namespace `ns` (or unchanged when `ns` is undefined). */
export function inNamespace(ns: string | undefined, argv: readonly string[]): string[] {
  return ns === undefined ? [...argv] : ['ip', 'netns', 'exec', ns, ...argv];
}
