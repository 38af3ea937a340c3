/*
 * The relocatable tarball: GNU tar with entries sorted by name, owner and group 0, the times already
 * fixed by normalizeTree (and --mtime for anything tar adds), then gzip -9n from zlib, so the bytes
 * depend on the tree alone.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { ProgramErrorCode } from '@nmp/common';
import { gzip9 } from './tree.js';

export class TarballError extends Error {
  readonly code = 'NMP_RELEASE_TARBALL' satisfies ProgramErrorCode;
}

/** `<parent>/<top>` as a .tar.gz at `out`. */
export function buildTarball(parent: string, top: string, out: string, epochSeconds: number): void {
  const tar = spawnSync(
    'tar',
    [
      '--sort=name',
      '--format=gnu',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      `--mtime=@${epochSeconds}`,
      '-C',
      parent,
      '-cf',
      '-',
      top,
    ],
    { maxBuffer: 1 << 30 },
  );
  if (tar.status !== 0)
    throw new TarballError(`tar: ${tar.error?.message ?? tar.stderr.toString().trim()} (GNU tar is needed)`);
  writeFileSync(out, gzip9(tar.stdout));
}
