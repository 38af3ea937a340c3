/*
 * The attachments file: what the daemon must serve after a restart. Written atomically (temp file,
 * fsync, rename, fsync of the directory), so a crash leaves the old or the new list, never half of one.
 * Saves are coalesced: while one write runs, later changes wait for the next one, which carries them all,
 * so a burst of 1,000 attaches costs a handful of writes, not 1,000.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type AttachSpec, checkAttachSpec } from './protocol.js';

export const STATE_FILE_NAME = 'attachments.json';

export interface LoadedState {
  readonly attachments: AttachSpec[];
  /** Entries that could not be read (reported, then dropped at the next save). */
  readonly rejected: string[];
}

export function loadState(file: string): LoadedState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { attachments: [], rejected: [] };
    throw err;
  }
  const parsed = JSON.parse(text) as { version?: number; attachments?: unknown[] };
  if (parsed.version !== 1 || !Array.isArray(parsed.attachments))
    throw new Error(`${file}: not a version 1 attachments file`);
  const attachments: AttachSpec[] = [];
  const rejected: string[] = [];
  const seen = new Set<string>();
  for (const a of parsed.attachments) {
    try {
      const spec = checkAttachSpec(a as Record<string, unknown>);
      if (seen.has(spec.namespace)) throw new Error(`namespace ${spec.namespace} twice`);
      seen.add(spec.namespace);
      attachments.push(spec);
    } catch (err) {
      rejected.push(`${JSON.stringify(a).slice(0, 200)}: ${(err as Error).message}`);
    }
  }
  return { attachments, rejected };
}

function writeAtomic(file: string, text: string): void {
  const tmp = join(dirname(file), `.${STATE_FILE_NAME}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dir = openSync(dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export class StateFile {
  readonly file: string;
  readonly #snapshot: () => readonly AttachSpec[];
  #writing: Promise<void> | undefined;
  #again = false;
  #waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  /** `snapshot` gives the current list each time a write starts. */
  constructor(file: string, snapshot: () => readonly AttachSpec[]) {
    this.file = file;
    this.#snapshot = snapshot;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  }

  /** Resolves once a write that started after this call has reached the disk. */
  save(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (this.#writing) this.#again = true;
    else this.#writing = this.#run();
    return done;
  }

  async #run(): Promise<void> {
    // Let the changes of this turn of the event loop join this write.
    await new Promise<void>((r) => setImmediate(r));
    do {
      this.#again = false;
      const waiters = this.#waiters;
      this.#waiters = [];
      try {
        const attachments = this.#snapshot().map((a) => ({
          id: a.id,
          mode: a.mode,
          namespace: a.namespace,
          binds: a.binds,
        }));
        writeAtomic(this.file, `${JSON.stringify({ version: 1, attachments }, null, 1)}\n`);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    } while (this.#again || this.#waiters.length > 0);
    this.#writing = undefined;
  }
}
