#!/usr/bin/env node
// Runs every compiled test file with node:test. Node 20's `node --test` takes paths, not globs, so the
// files are listed here: packages/*/dist/test/**/*.test.js, then test/dist/**/*.test.js (integration and,
// as root, network-namespace end-to-end tests). `--no-root` skips the namespace tests even as root.
// Extra arguments that are paths or substrings filter the files. Files that need the machine to themselves
// run last, alone (ALONE below).
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
// Files that load the machine for minutes (the installed-package test builds the release three times and
// installs it) run after the others, alone: beside them, the timing-bound tests (graceful shutdown, restarts
// under load, the soak) would measure the machine instead of the code. They get a longer limit.
const ALONE = [/release\/dist\/test\/installed-package\.test\.js$/];
const alone = selected.filter((f) => ALONE.some((a) => a.test(f)));
const together = selected.filter((f) => !alone.includes(f));
let status = 0;
for (const [files, args] of [
  [together, ['--test-concurrency=2', '--test-timeout=300000']],
  [alone, ['--test-concurrency=1', '--test-timeout=1500000']],
]) {
  if (files.length === 0) continue;
  const result = spawnSync(process.execPath, ['--test', ...args, ...files], {
    cwd: root,
    env,
    stdio: 'inherit',
  });
  if (result.status !== 0) status = result.status ?? 1;
}
process.exit(status);
