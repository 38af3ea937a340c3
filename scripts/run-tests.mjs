#!/usr/bin/env node
// Runs every compiled test file with node:test. Node 20's `node --test` takes paths, not globs, so the
// files are listed here: packages/*/dist/test/**/*.test.js, then test/dist/**/*.test.js (integration and,
// as root, network-namespace end-to-end tests). `--no-root` skips the namespace tests even as root.
// Extra arguments that are paths or substrings filter the files.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const env = { ...process.env };
const filters = [];
for (const a of args) {
  if (a === '--no-root') env.NMP_SKIP_ROOT_TESTS = '1';
  else filters.push(a);
}

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages')).sort())
  walk(join(root, 'packages', pkg, 'dist', 'test'), files);
walk(join(root, 'test', 'dist'), files);
const selected = files
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (selected.length === 0) {
  console.error('run-tests: no test files found (did the build run?)');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-timeout=300000', ...selected],
  { cwd: root, env, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
