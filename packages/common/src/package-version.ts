/*
 * A package's version, for --version, start-up log lines and the *_info metrics; and whether the program
 * runs from a release tree (the .deb's /usr/lib/nmp or an unpacked tarball) rather than a build tree.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The version in the package.json of the package that `moduleUrl` (a module's `import.meta.url`) belongs
 * to: the nearest package.json above the module, wherever the compiled output lies below the package.
 * Read once at start; '0.0.0' when there is none.
 */
export function packageVersion(moduleUrl: string): string {
  return nearestPackage(moduleUrl)?.json.version ?? '0.0.0';
}

/**
 * The root of the release tree the module runs from (its bin/ holds the programs and the runtime), or
 * undefined in a build tree. The release builder marks each shipped package.json with `"nmpRelease": true`;
 * packages sit at `<root>/packages/<name>/`.
 */
export function releaseRoot(moduleUrl: string): string | undefined {
  const pkg = nearestPackage(moduleUrl);
  return pkg?.json.nmpRelease === true ? dirname(dirname(pkg.dir)) : undefined;
}

function nearestPackage(
  moduleUrl: string,
): { dir: string; json: { version?: string; nmpRelease?: boolean } } | undefined {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return { dir, json: JSON.parse(readFileSync(file, 'utf8')) };
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
