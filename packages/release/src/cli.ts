#!/usr/bin/env node
/*
 * `npm run package [-- --version V] [--out-dir DIR]`: writes release/nmp_<version>_amd64.deb,
 * release/nmp-<version>-linux-x64.tar.gz and release/SHA256SUMS from the built tree (docs/release.md).
 */
import { createCli, runMain, UsageError } from '@nmp/common';
import { buildRelease } from './build.js';

const PROGRAM = 'nmp-release';

async function main(): Promise<void> {
  const a = await createCli(PROGRAM, 'release builder', process.argv.slice(2))
    .usage(
      '$0 [--version V] [--out-dir DIR]\n\nBuild the Debian package, the relocatable tarball and SHA256SUMS from the built tree (run `npm run build` first; `npm run package` does both).',
    )
    .version(false)
    .option('version', { type: 'string', describe: "release version (default: package.json's)" })
    .option('out-dir', { type: 'string', describe: 'where the artefacts go (default: release/)' })
    .option('source-date-epoch', {
      type: 'number',
      describe: 'time of every file, in seconds (default: $SOURCE_DATE_EPOCH, else the last commit)',
    })
    .option('node-license', { type: 'string', describe: "node's LICENSE file, if not found beside it" })
    .option('maintainer', { type: 'string', describe: 'the Maintainer field' })
    .option('tarball', {
      type: 'boolean',
      default: true,
      describe: 'also build the tarball (--no-tarball: only the .deb)',
    })
    .option('keep-work', { type: 'boolean', default: false, describe: 'keep the staging directory' })
    .parseAsync();
  if (a.sourceDateEpoch !== undefined && !(a.sourceDateEpoch >= 0))
    throw new UsageError('--source-date-epoch must be a number of seconds');
  const started = Date.now();
  const r = await buildRelease({
    ...(a.version !== undefined ? { version: a.version } : {}),
    ...(a.outDir !== undefined ? { outDir: a.outDir } : {}),
    ...(a.sourceDateEpoch !== undefined ? { sourceDateEpoch: a.sourceDateEpoch } : {}),
    ...(a.nodeLicense !== undefined ? { nodeLicense: a.nodeLicense } : {}),
    ...(a.maintainer !== undefined ? { maintainer: a.maintainer } : {}),
    tarball: a.tarball,
    keepWork: a.keepWork,
    log: (m) => process.stdout.write(`${PROGRAM}: ${m}\n`),
  });
  process.stdout.write(`${[r.deb, r.tarball, r.sums].filter((f) => f !== undefined).join('\n')}\n`);
  if (r.workDir) process.stdout.write(`staging kept in ${r.workDir}\n`);
  process.stdout.write(`${PROGRAM}: done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

runMain(PROGRAM, main);
