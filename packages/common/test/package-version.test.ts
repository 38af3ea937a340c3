/* packageVersion: the version of the package a compiled module belongs to. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { packageVersion } from '../src/package-version.js';

test("a module's package version comes from the nearest package.json above it", () => {
  const own = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  assert.equal(packageVersion(import.meta.url), own.version);
  assert.equal(packageVersion(new URL('../src/index.js', import.meta.url).href), own.version);
  assert.equal(packageVersion('file:///'), '0.0.0');
});
