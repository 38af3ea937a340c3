/* Generated documentation must match the code it is generated from (scripts/docs.mjs). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERRORS, LOG_EVENTS, PROGRAM_ERRORS, type Schema } from '@nmp/common';
import { haproxyCompatOptions } from '@nmp/metadata-hooks';
import { PROGRAM_SCHEMAS, PROGRAMS } from '@nmp/release';

const script = fileURLToPath(new URL('../../scripts/docs.mjs', import.meta.url));
const configurationMd = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));
const packagesDir = fileURLToPath(new URL('../../packages/', import.meta.url));
const docsDir = fileURLToPath(new URL('../../docs/', import.meta.url));

test('docs generated from the code are up to date', () => {
  const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

/** What each program reads besides its INI schema (PROGRAM_SCHEMAS, which its man page lists). */
const OTHER_SCHEMAS: Readonly<Record<string, readonly Schema[]>> = {
  'metadata-hooks': [haproxyCompatOptions as Schema],
};

interface Documented {
  /** `## program` -> `section\0name` of every option its section describes or refers to. */
  readonly byProgram: Map<string, Set<string>>;
  /** `section\0name` of every option described in full (a table row), anywhere. */
  readonly described: Set<string>;
  /** Every table row, to find one described twice. */
  readonly rows: string[];
  /** Link targets (`#anchor`) and the anchors of the headings. */
  readonly links: string[];
  readonly anchors: Set<string>;
}

/**
 * Reads docs/configuration.md as a person would: a program's options are the rows of the tables under its
 * `## program` heading (each after its `#### [section]`), and the names in its "described elsewhere"
 * bullets (`- [where](#anchor): \`a\`, \`b\`; \`[section]\` \`c\``).
 */
function readDoc(text: string): Documented {
  const byProgram = new Map<string, Set<string>>();
  const described = new Set<string>();
  const rows: string[] = [];
  const links: string[] = [];
  const anchors = new Set<string>();
  let current = new Set<string>();
  let group = 'DEFAULT';
  for (const line of text.split('\n')) {
    const heading = /^(#+) (.*)$/.exec(line);
    if (heading) {
      const title = heading[2]!;
      anchors.add(
        title
          .toLowerCase()
          .replace(/[^\p{L}\p{N}\s_-]/gu, '')
          .replace(/\s/g, '-'),
      );
      if (heading[1] === '##') {
        current = new Set();
        byProgram.set(title, current);
        group = 'DEFAULT';
      }
      const section = /^`\[(.+)\]`$/.exec(title);
      if (heading[1] === '####' && section) group = section[1]!;
      continue;
    }
    const row = /^\| `([^`]+)` \|/.exec(line);
    if (row) {
      current.add(`${group}\0${row[1]}`);
      described.add(`${group}\0${row[1]}`);
      rows.push(line);
      continue;
    }
    for (const m of line.matchAll(/\]\((#[^)]+)\)/g)) links.push(m[1]!);
    const ref = /^- \[[^\]]+\]\(#[^)]+\): (.*)$/.exec(line);
    if (ref) {
      let refGroup = 'DEFAULT';
      for (const [, token] of ref[1]!.matchAll(/`([^`]+)`/g)) {
        const s = /^\[(.+)\]$/.exec(token!);
        if (s) refGroup = s[1]!;
        else current.add(`${refGroup}\0${token}`);
      }
    }
  }
  return { byProgram, described, rows, links, anchors };
}

test('docs/configuration.md describes every option of every program', () => {
  const doc = readDoc(readFileSync(configurationMd, 'utf8'));
  const missing: string[] = [];
  for (const p of PROGRAMS) {
    const seen = doc.byProgram.get(p.name);
    assert.ok(seen, `no "## ${p.name}" section`);
    for (const schema of [PROGRAM_SCHEMAS[p.name], ...(OTHER_SCHEMAS[p.name] ?? [])])
      for (const d of Object.values(schema)) {
        const key = `${d.group}\0${d.name}`;
        if (!seen.has(key)) missing.push(`${p.name}: [${d.group}] ${d.name}`);
        else if (!doc.described.has(key))
          missing.push(`${p.name}: [${d.group}] ${d.name} (only referred to)`);
      }
  }
  assert.deepEqual(missing, []);
});

test('docs/configuration.md describes no option twice in full, and its references lead somewhere', () => {
  const doc = readDoc(readFileSync(configurationMd, 'utf8'));
  const twice = doc.rows.filter((r, i) => doc.rows.indexOf(r) !== i);
  assert.deepEqual(twice, [], 'the same definition written twice: share it (packages/common/src/config)');
  assert.ok(doc.links.length > 0);
  for (const link of doc.links) assert.ok(doc.anchors.has(link.slice(1)), `${link} leads nowhere`);
});

/** The three code tables of @nmp/common, each code with the table it is in. */
const TABLES: ReadonlyMap<string, string> = new Map([
  ...Object.keys(ERRORS).map((c) => [c, 'ERRORS'] as const),
  ...Object.keys(PROGRAM_ERRORS).map((c) => [c, 'PROGRAM_ERRORS'] as const),
  ...Object.keys(LOG_EVENTS).map((c) => [c, 'LOG_EVENTS'] as const),
]);

/** Strings of the codes' shape that are not codes: environment variables. */
const NOT_CODES: ReadonlySet<string> = new Set([
  'NMP_HANDOVER', // common/src/handover.ts: the descriptors a successor inherits
  'NMP_METADATA_PROXY_SHARED_SECRET', // the agent's secret from the environment
  'NMP_EXPECT_BODY', // bench/src/load-worker.ts: the body wrk's Lua script checks every answer against
]);

/** What looks like a code: `MDA_X`, `MDP_X`, `MDH_X`, `NMP_X`, `OVSDB_X`. */
const CODE_SHAPE = /^(MDA|MDP|MDH|NMP|OVSDB)_[A-Z0-9_]+$/;
/** Node's own codes (errno, ERR_*, llhttp's HPE_*): not ours to list. */
const NODE_CODE = /^(E[A-Z0-9]+|ERR_[A-Z0-9_]+|HPE_[A-Z0-9_]+)$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/**
 * Every code a program's source writes as a literal: a string of the codes' shape anywhere, and any string
 * given as a `code` (`code: 'x'`, `code = 'x'`, `code ??= 'x'`), `LogEvent.x` included; comments are skipped.
 */
export function codesInSource(root: string): { where: string; code: string }[] {
  const found: { where: string; code: string }[] = [];
  for (const pkg of readdirSync(root)) {
    let files: string[];
    try {
      files = sourceFiles(join(root, pkg, 'src'));
    } catch {
      continue;
    }
    for (const file of files) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (/^\s*(\*|\/\*|\/\/)/.test(line)) return; // comments
        const where = `${file.slice(root.length)}:${i + 1}`;
        for (const m of line.matchAll(/(['"`])([A-Za-z0-9_]+)\1/g))
          if (CODE_SHAPE.test(m[2]!)) found.push({ where, code: m[2]! });
        for (const m of line.matchAll(/\bcode\s*(?::|=|\?\?=)\s*(['"])([^'"]+)\1/g))
          if (!CODE_SHAPE.test(m[2]!) && !NODE_CODE.test(m[2]!)) found.push({ where, code: m[2]! });
        for (const m of line.matchAll(/\bLogEvent\.([A-Za-z0-9_]+)/g)) found.push({ where, code: m[1]! });
      });
    }
  }
  return found;
}

test('every code in the source is in a table of @nmp/common (errors.ts, log-events.ts)', () => {
  const found = codesInSource(packagesDir);
  assert.ok(found.length > 100, `only ${found.length} codes found: is the scan broken?`);
  const unlisted = found
    .filter(({ code }) => !TABLES.has(code) && !NOT_CODES.has(code))
    .map(({ where, code }) => `${where} ${code}`);
  assert.deepEqual(unlisted, [], 'add these to packages/common/src/log-events.ts or errors.ts');
});

test('every listed code is used, in one table only, and documented in its generated page', () => {
  const used = new Set(codesInSource(packagesDir).map((f) => f.code));
  const tables = [ERRORS, PROGRAM_ERRORS, LOG_EVENTS].map((t) => Object.keys(t));
  const all = tables.flat();
  assert.deepEqual(
    all.filter((c, i) => all.indexOf(c) !== i),
    [],
    'a code in two tables',
  );
  assert.deepEqual(
    all.filter((c) => !used.has(c)),
    [],
    'listed but written nowhere in packages/*/src',
  );
  const errorsMd = readFileSync(join(docsDir, 'errors.md'), 'utf8');
  const eventsMd = readFileSync(join(docsDir, 'log-events.md'), 'utf8');
  for (const c of [...tables[0]!, ...tables[1]!]) assert.ok(errorsMd.includes(`| \`${c}\` |`), c);
  for (const c of tables[2]!) assert.ok(eventsMd.includes(`| \`${c}\` |`), c);
});

test('the codes the documentation names exist', () => {
  const unknown: string[] = [];
  for (const name of readdirSync(docsDir).filter((f) => f.endsWith('.md'))) {
    const text = readFileSync(join(docsDir, name), 'utf8');
    // A code followed by `(` is the start of a regular expression (`MDA_CONFIG_RELOAD(ED|_FAILED)`).
    for (const m of text.matchAll(/\b((?:MDA|MDP|MDH|OVSDB)_[A-Z0-9_]*[A-Z0-9])\b(?!\()/g))
      if (!TABLES.has(m[1]!)) unknown.push(`docs/${name}: ${m[1]}`);
  }
  assert.deepEqual([...new Set(unknown)], []);
});
