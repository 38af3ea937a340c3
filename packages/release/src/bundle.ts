/*
 * One file per entry point, made by esbuild from the compiled build tree: our packages and the production
 * dependencies they use (undici, pino, yargs, amqplib, ipaddr.js and theirs) in it, nothing else. A
 * program then starts by reading one file instead of resolving some 260 modules (metadata-agent:
 * `--version` 0.23 s instead of 0.38 s, 9 MB less resident; docs/benchmarks.md, "Release tree").
 *
 * Our sources load CommonJS packages with `createRequire(import.meta.url)('x')` (an ES module importing
 * CommonJS costs node its export scanner, and some are loaded only when needed). esbuild cannot follow
 * that call, so while bundling it is rewritten to `require('x')`, which esbuild bundles and still runs
 * at the first call; the banner gives the bundle a `require` for node's own modules.
 */

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import type { ProgramErrorCode } from '@nmp/common';
import { build, type Plugin } from 'esbuild';
import { entryPoints, REPO_ROOT, shippedPackages } from './layout.js';

/** An npm package whose code is inside a bundle (for the copyright file). */
export interface BundledModule {
  readonly name: string;
  readonly version: string;
  readonly license: string;
  /** Its licence file's text, when it ships one. */
  readonly licenseText?: string;
  readonly author?: string;
}

export class BundleError extends Error {
  readonly code = 'NMP_RELEASE_BUNDLE' satisfies ProgramErrorCode;
}

const LAZY_REQUIRE = /createRequire\(import\.meta\.url\)\((['"][^'"]+['"])\)/g;
const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Our compiled files as esbuild should read them: lazy requires made visible, no `#!` line. */
const ourSources: Plugin = {
  name: 'nmp-sources',
  setup(b) {
    b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]dist[\\/].*\.js$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8')
        .replace(/^#!.*\n/, '')
        .replace(LAZY_REQUIRE, 'require($1)'),
      loader: 'js',
    }));
  },
};

/*
 * undici's cookie helpers build their brand check when undici is loaded, and that reads globalThis.Headers:
 * node's own copy of undici (fetch's globals are lazy) is then compiled and run at every start, about 40 ms
 * of the agent's start to listening for helpers nothing of ours calls. The same check, made at its first
 * use instead: what it accepts and refuses is unchanged.
 */
const UNDICI_COOKIES = /node_modules[\\/]undici[\\/]lib[\\/]web[\\/]cookies[\\/]index\.js$/;
const EAGER_BRAND_CHECK =
  'const brandChecks = webidl.brandCheckMultiple([Headers, globalThis.Headers].filter(Boolean))';
const LAZY_BRAND_CHECK =
  'let brandChecksMade\nconst brandChecks = (V) => (brandChecksMade ??= webidl.brandCheckMultiple([Headers, globalThis.Headers].filter(Boolean)))(V)';

const lazyUndiciGlobals: Plugin = {
  name: 'nmp-undici-lazy-globals',
  setup(b) {
    b.onLoad({ filter: UNDICI_COOKIES }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      if (!src.includes(EAGER_BRAND_CHECK)) {
        if (src.includes('globalThis.Headers'))
          throw new BundleError(`${args.path} changed: revisit the lazy brand check in bundle.ts`);
        return undefined;
      }
      return { contents: src.replace(EAGER_BRAND_CHECK, LAZY_BRAND_CHECK), loader: 'js' };
    });
  },
};

const BANNER =
  "import { createRequire as __nmpCreateRequire } from 'node:module';\n" +
  'const require = __nmpCreateRequire(import.meta.url);';

/**
 * Bundle every entry point into `treeRoot` at its build-tree path, write each shipped package's
 * package.json (version, ES module, the release marker), and return the npm packages that went in.
 */
export async function bundlePrograms(treeRoot: string, version: string): Promise<BundledModule[]> {
  const modules = new Map<string, BundledModule>();
  for (const entry of entryPoints()) {
    const outfile = join(treeRoot, entry);
    const result = await build({
      absWorkingDir: REPO_ROOT,
      entryPoints: [join(REPO_ROOT, entry)],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      banner: { js: BANNER },
      plugins: [ourSources, lazyUndiciGlobals],
      // Whitespace and syntax only: names stay, so a stack trace still says which function; the file is a
      // third smaller, which is what node reads, decodes and compiles at every start (agent start to
      // listening 319 -> 303 ms, median of 11 alternating starts on the 2-core machine).
      minifyWhitespace: true,
      minifySyntax: true,
      legalComments: 'none',
      charset: 'utf8',
      metafile: true,
      logLevel: 'silent',
    });
    if (result.warnings.length > 0)
      throw new BundleError(`${entry}: ${result.warnings.map((w) => w.text).join('; ')}`);
    for (const [file, output] of Object.entries(result.metafile.outputs)) {
      // node: names are node's own (node:sqlite, which undici's optional cache store asks for, is newer than node 20).
      const outside = output.imports.filter(
        (i) => i.external && !BUILTINS.has(i.path) && !i.path.startsWith('node:'),
      );
      if (outside.length > 0)
        throw new BundleError(`${file} would load ${outside.map((i) => i.path).join(', ')} at run time`);
    }
    for (const input of Object.keys(result.metafile.inputs)) {
      const m = /^(.*node_modules\/((?:@[^/]+\/)?[^/]+))\//.exec(input);
      if (m && !modules.has(m[2]!)) modules.set(m[2]!, describeModule(m[2]!, join(REPO_ROOT, m[1]!)));
    }
  }
  for (const pkg of shippedPackages()) {
    const dir = join(treeRoot, 'packages', pkg);
    mkdirSync(dir, { recursive: true });
    const own = JSON.parse(readFileSync(join(REPO_ROOT, 'packages', pkg, 'package.json'), 'utf8')) as {
      name: string;
    };
    const manifest = {
      name: own.name,
      version,
      private: true,
      type: 'module',
      license: 'Apache-2.0',
      nmpRelease: true,
    };
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  }
  return [...modules.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function describeModule(name: string, dir: string): BundledModule {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    version: string;
    license?: string;
    author?: string | { name?: string; email?: string };
  };
  const licenseFile = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  const author = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
  return {
    name,
    version: pkg.version,
    license: pkg.license ?? 'UNKNOWN',
    ...(licenseFile ? { licenseText: readFileSync(join(dir, licenseFile), 'utf8') } : {}),
    ...(author ? { author } : {}),
  };
}
