#!/usr/bin/env node
// Public surfaces: for each package, the names its barrel (src/index.ts) exports against the names that
// code outside the package imports from it: the other packages' src/ and test/, test/src and scripts/.
// An import counts by the package name (`@nmp/x`, `@nmp/x/sub`) or by path into its build
// (`../packages/x/dist/src/index.js`, `join(ROOT, 'packages/x/dist/src/y.js')`). Subpath exports are
// listed apart. Usage: node scripts/surface.mjs [--unused] (--unused lists what the barrel exports and
// nobody outside imports).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const showUnused = process.argv.includes('--unused');

function walk(dir, out, exts) {
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out, exts);
    else if (exts.some((e) => name.endsWith(e)) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const packages = readdirSync(join(root, 'packages')).sort();
const pkgName = new Map(
  packages.map((dir) => [
    JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')).name,
    dir,
  ]),
);

function parse(file) {
  return ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
}

/** Names a barrel exports (`export { a, type B } from`, `export function/const/class/...`; `export *` as '*from'). */
function barrelExports(file) {
  const names = new Set();
  for (const s of parse(file).statements) {
    if (ts.isExportDeclaration(s)) {
      if (!s.exportClause) names.add(`*${s.moduleSpecifier.text}`);
      else if (ts.isNamedExports(s.exportClause))
        for (const e of s.exportClause.elements) names.add(e.name.text);
      else names.add(s.exportClause.name.text);
    } else if (s.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) {
      if (ts.isVariableStatement(s))
        for (const d of s.declarationList.declarations) names.add(d.name.getText());
      else if (s.name) names.add(s.name.text);
    }
  }
  return names;
}

/** Which package (dir) and which entry ('.' or a subpath) a module specifier points at, if one of ours. */
function target(spec) {
  const m = /^(@nmp\/[^/]+)(?:\/(.+))?$/.exec(spec);
  if (m && pkgName.has(m[1])) return { dir: pkgName.get(m[1]), entry: m[2] ? `./${m[2]}` : '.' };
  const p = /(?:^|\/)packages\/([^/]+)\/dist\/src\/(.+)\.js$/.exec(spec);
  if (p && packages.includes(p[1])) return { dir: p[1], entry: p[2] === 'index' ? '.' : `dist:${p[2]}` };
  return undefined;
}

/** The string a module specifier expression ends in (a literal, or the last argument of join(...)). */
function specText(node) {
  if (!node) return undefined;
  if (ts.isStringLiteralLike(node)) return node.text;
  if (ts.isCallExpression(node) && node.arguments.length > 0)
    return specText(node.arguments[node.arguments.length - 1]);
  return undefined;
}

/** Names bound from a dynamic import: `const { a, b } = await import(...)`. */
function boundNames(call) {
  let n = call.parent;
  if (n && ts.isAwaitExpression(n)) n = n.parent;
  if (n && ts.isVariableDeclaration(n) && ts.isObjectBindingPattern(n.name))
    return n.name.elements.map((e) => (e.propertyName ?? e.name).getText());
  return ['*'];
}

// uses.get(dir).get(entry) = Map<name, Set<importing file>>
const uses = new Map(packages.map((d) => [d, new Map()]));
function use(dir, entry, name, file) {
  const entries = uses.get(dir);
  if (!entries.has(entry)) entries.set(entry, new Map());
  const names = entries.get(entry);
  if (!names.has(name)) names.set(name, new Set());
  names.get(name).add(relative(root, file));
}

const importers = [
  ...packages.flatMap((d) =>
    ['src', 'test'].flatMap((sub) =>
      walk(join(root, 'packages', d, sub), [], ['.ts', '.mjs']).map((f) => ({ f, owner: d })),
    ),
  ),
  ...walk(join(root, 'test', 'src'), [], ['.ts']).map((f) => ({ f, owner: 'test' })),
  ...walk(join(root, 'scripts'), [], ['.mjs', '.ts']).map((f) => ({ f, owner: 'scripts' })),
];
for (const { f, owner } of importers) {
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      const t = target(node.moduleSpecifier.text);
      if (t && t.dir !== owner) {
        const clause = ts.isImportDeclaration(node) ? node.importClause : undefined;
        if (ts.isExportDeclaration(node)) {
          if (node.exportClause && ts.isNamedExports(node.exportClause))
            for (const e of node.exportClause.elements)
              use(t.dir, t.entry, (e.propertyName ?? e.name).text, f);
          else use(t.dir, t.entry, '*', f);
        } else if (!clause) use(t.dir, t.entry, '(side effect)', f);
        else {
          if (clause.name) use(t.dir, t.entry, 'default', f);
          const nb = clause.namedBindings;
          if (nb && ts.isNamespaceImport(nb)) use(t.dir, t.entry, '*', f);
          else if (nb) for (const e of nb.elements) use(t.dir, t.entry, (e.propertyName ?? e.name).text, f);
        }
      }
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const spec = specText(node.arguments[0]);
      const t = spec && target(spec);
      if (t && t.dir !== owner) for (const n of boundNames(node)) use(t.dir, t.entry, n, f);
    }
    ts.forEachChild(node, visit);
  };
  visit(parse(f));
}

const rows = [];
for (const dir of packages) {
  const exported = barrelExports(join(root, 'packages', dir, 'src', 'index.ts'));
  const entries = uses.get(dir);
  const viaBarrel = entries.get('.') ?? new Map();
  const usedNames = [...viaBarrel.keys()].filter((n) => exported.has(n));
  const notExported = [...viaBarrel.keys()].filter((n) => !exported.has(n) && n !== '*');
  const others = [...entries.keys()].filter((e) => e !== '.').sort();
  rows.push({ dir, count: exported.size, used: usedNames.length, others, notExported, exported, viaBarrel });
}

console.log(
  '| package | exported by index.ts | used by other packages | other entries imported from outside |',
);
console.log('| --- | ---: | ---: | --- |');
for (const r of rows) {
  const others = r.others.map((e) => `${e} (${uses.get(r.dir).get(e).size})`).join(', ') || '—';
  console.log(`| ${r.dir} | ${r.count} | ${r.used} | ${others} |`);
}
for (const r of rows) {
  if (r.notExported.length > 0)
    console.log(`\n${r.dir}: imported through the barrel but not exported: ${r.notExported.join(', ')}`);
  if (r.viaBarrel.has('*'))
    console.log(
      `\n${r.dir}: imported whole (* or unbound dynamic import) by ${[...r.viaBarrel.get('*')].join(', ')}`,
    );
  if (showUnused) {
    const unused = [...r.exported].filter((n) => !r.viaBarrel.has(n));
    if (unused.length > 0)
      console.log(`\n${r.dir}: exported, not imported from outside: ${unused.join(', ')}`);
  }
}
if (process.argv.includes('--used')) {
  for (const r of rows)
    for (const [entry, names] of uses.get(r.dir)) {
      console.log(`\n${r.dir} ${entry}:`);
      for (const [n, files] of names) console.log(`  ${n}  <- ${[...files].join(' ')}`);
    }
}
if (process.argv.includes('--json')) {
  const out = {};
  for (const r of rows) out[r.dir] = [...r.viaBarrel.keys()];
  console.log(JSON.stringify(out));
}
