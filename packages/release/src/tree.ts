/*
 * Helpers for the staged file trees: listing them in a stable order, giving every entry a fixed mode and
 * time (so the archives do not depend on the umask or the clock of the build), and gzip -9n as Debian
 * wants documentation and man pages compressed (no name, no time in the header).
 */
import { chmodSync, lstatSync, lutimesSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { constants, gzipSync } from 'node:zlib';

export interface TreeEntry {
  /** Relative to the tree's root, `/`-separated. */
  readonly path: string;
  readonly type: 'dir' | 'file' | 'symlink';
}

/** Every entry below `root`, sorted by path (byte order), directories before their contents. */
export function listFiles(root: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(join(root, path));
      if (st.isSymbolicLink()) out.push({ path, type: 'symlink' });
      else if (st.isDirectory()) {
        out.push({ path, type: 'dir' });
        walk(path);
      } else out.push({ path, type: 'file' });
    }
  };
  walk('');
  return out;
}

/**
 * Fixed modes (directories 0755; files 0755 if anyone may execute them, else 0644; `modes` overrides by
 * path) and every time set to `epochSeconds`.
 */
export function normalizeTree(
  root: string,
  epochSeconds: number,
  modes: ReadonlyMap<string, number> = new Map(),
): void {
  const entries = listFiles(root);
  // The root too: it is the archive's `./` (made under the builder's umask like everything else).
  chmodSync(root, 0o755);
  for (const e of entries) {
    const abs = join(root, e.path);
    if (e.type === 'symlink') continue;
    const wanted = modes.get(e.path) ?? (e.type === 'dir' || statSync(abs).mode & 0o111 ? 0o755 : 0o644);
    chmodSync(abs, wanted);
  }
  // Times last, deepest first: touching an entry does not change its parent's mtime, but creating does.
  for (const e of [...entries].reverse()) {
    const abs = join(root, e.path);
    if (e.type === 'symlink') lutimesSync(abs, epochSeconds, epochSeconds);
    else utimesSync(abs, epochSeconds, epochSeconds);
  }
  utimesSync(root, epochSeconds, epochSeconds);
}

/** gzip -9n: maximum compression, no file name or time in the header. */
export function gzip9(data: string | Buffer): Buffer {
  return gzipSync(data, { level: constants.Z_BEST_COMPRESSION });
}

/** Size in KiB as dpkg counts Installed-Size: each regular file rounded up to 1 KiB, plus one per entry else. */
export function installedSizeKiB(root: string, exclude: (path: string) => boolean): number {
  let kib = 0;
  for (const e of listFiles(root)) {
    if (exclude(e.path)) continue;
    kib += e.type === 'file' ? Math.ceil(lstatSync(join(root, e.path)).size / 1024) : 1;
  }
  return kib;
}
