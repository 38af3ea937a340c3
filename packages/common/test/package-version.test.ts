/* packageVersion: the version of the package a compiled module belongs to; releaseRoot: a release tree's root. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { packageVersion, releaseRoot } from '../src/package-version.js';

test("a module's package version comes from the nearest package.json above it", () => {
  const own = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  assert.equal(packageVersion(import.meta.url), own.version);
  assert.equal(packageVersion(new URL('../src/index.js', import.meta.url).href), own.version);
  assert.equal(packageVersion('file:///'), '0.0.0');
});

test('releaseRoot: the tree above packages/<name>/ when that package.json is marked nmpRelease, else none', () => {
  const root = mkdtempSync(join(tmpdir(), 'nmp-release-root-'));
  try {
    const src = join(root, 'packages', 'metadata-hooks', 'dist', 'src');
    mkdirSync(src, { recursive: true });
    const pkg = join(root, 'packages', 'metadata-hooks', 'package.json');
    const module = pathToFileURL(join(src, 'cli.js')).href;
    writeFileSync(pkg, JSON.stringify({ name: '@nmp/metadata-hooks', version: '1.2.3', type: 'module' }));
    assert.equal(releaseRoot(module), undefined);
    writeFileSync(pkg, JSON.stringify({ name: '@nmp/metadata-hooks', version: '1.2.3', nmpRelease: true }));
    assert.equal(releaseRoot(module), root);
    assert.equal(packageVersion(module), '1.2.3');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  // This build tree is not a release.
  assert.equal(releaseRoot(import.meta.url), undefined);
});
