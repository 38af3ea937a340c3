/* Generated documentation must match the code it is generated from (scripts/docs.mjs). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Schema } from '@nmp/common';
import { haproxyCompatOptions } from '@nmp/metadata-hooks';
import { PROGRAM_SCHEMAS, PROGRAMS } from '@nmp/release';

const script = fileURLToPath(new URL('../../scripts/docs.mjs', import.meta.url));
const configurationMd = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));

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
