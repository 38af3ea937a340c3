/*
 * Noticing that namespaces come and go: /run/netns is watched (a change is acted on 100 ms later, so a burst
 * of changes is one check), and checked every namespace_check_interval anyway (a watch can miss events, or
 * fail, or /run/netns may not exist yet). What a check does is the caller's: here only when.
 */
import { existsSync, type FSWatcher, watch } from 'node:fs';
import { NETNS_DIR } from './namespace-id.js';

export class NamespaceWatch {
  readonly #check: () => void;
  readonly #intervalMs: number;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;

  /** `check` runs after changes under /run/netns and every `intervalMs`. */
  constructor(intervalMs: number, check: () => void) {
    this.#intervalMs = intervalMs;
    this.#check = check;
  }

  start(): void {
    this.watch();
    this.#timer = setInterval(this.#check, this.#intervalMs);
    this.#timer.unref();
  }

  /** Watch /run/netns if not yet watching (it may have appeared since, or the watch failed). */
  watch(): void {
    if (this.#watcher || !existsSync(NETNS_DIR)) return;
    try {
      this.#watcher = watch(NETNS_DIR, { persistent: false }, () => {
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(this.#check, 100);
        this.#debounce.unref();
      });
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      // periodic checks still run
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
