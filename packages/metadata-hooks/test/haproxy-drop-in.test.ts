/*
 * The haproxy drop-in's switch, against a stand-in haproxy and a stand-in dpkg-divert in a temporary
 * directory (the installed-package test does it for real on /usr/sbin/haproxy): enable diverts and links,
 * is idempotent, refuses another package's diversion and a kill script that is not ours, reports a half
 * switch as partial; disable undoes exactly what enable did.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@nmp/testkit';
import { type DropInPaths, disableDropIn, dropInState, enableDropIn } from '../src/haproxy-drop-in.js';

/**
 * A dpkg-divert that keeps one diversion in a file: `--listpackage P` prints its owner; `--add`/`--remove`
 * with `--rename` move the file as dpkg-divert does.
 */
const FAKE_DIVERT = `#!/bin/sh
state="$(dirname "$0")/diversion"
case " $* " in
  *" --listpackage "*) [ -f "$state" ] && cut -d' ' -f1 "$state"; exit 0 ;;
esac
pkg=; divert=; add=; remove=; path=
while [ $# -gt 0 ]; do
  case "$1" in
    --package) pkg=$2; shift ;;
    --divert) divert=$2; shift ;;
    --add) add=1 ;;
    --remove) remove=1 ;;
    --rename) ;;
    *) path=$1 ;;
  esac
  shift
done
if [ -n "$add" ]; then echo "$pkg $divert $path" >"$state"; [ -e "$path" ] && mv "$path" "$divert"; fi
if [ -n "$remove" ]; then rm -f "$state"; [ -e "$divert" ] && [ ! -e "$path" ] && mv "$divert" "$path"; fi
exit 0
`;

function setup(t: { after: (fn: () => void) => void }): DropInPaths & { root: string } {
  const root = tempDir(t, 'nmp-drop-in-');
  for (const d of ['sbin', 'lib/bin', 'kill_scripts', 'dpkg']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'sbin/haproxy'), '#!/bin/sh\necho real haproxy\n', { mode: 0o755 });
  writeFileSync(join(root, 'lib/bin/haproxy'), '#!/bin/sh\necho wrapper\n', { mode: 0o755 });
  writeFileSync(join(root, 'dpkg/dpkg-divert'), FAKE_DIVERT, { mode: 0o755 });
  return {
    root,
    haproxy: join(root, 'sbin/haproxy'),
    wrapper: join(root, 'lib/bin/haproxy'),
    hooksProgram: join(root, 'lib/bin/metadata-hooks'),
    killScriptsPath: join(root, 'kill_scripts'),
    dpkgDivert: join(root, 'dpkg/dpkg-divert'),
  };
}

const asRoot = process.geteuid?.() === 0;

test('enable diverts and links, twice is harmless; disable restores haproxy', {
  skip: !asRoot && 'needs root (the switch refuses otherwise)',
}, async (t) => {
  const p = setup(t);
  const said: string[] = [];
  assert.equal((await dropInState(p)).state, 'disabled');
  await enableDropIn(p, { killScript: false }, (m) => said.push(m));
  assert.equal(readlinkSync(p.haproxy), p.wrapper);
  assert.equal(readFileSync(`${p.haproxy}.nmp-real`, 'utf8'), '#!/bin/sh\necho real haproxy\n');
  assert.equal((await dropInState(p)).state, 'enabled');
  assert.equal((await dropInState(p)).divertedBy, 'nmp');
  const before = said.length;
  await enableDropIn(p, { killScript: false }, (m) => said.push(m));
  assert.deepEqual(
    said.slice(before).filter((m) => /diverted|linked/.test(m)),
    [],
    'a second enable changed something',
  );
  await disableDropIn(p, () => {});
  assert.equal(lstatSync(p.haproxy).isSymbolicLink(), false);
  assert.equal(readFileSync(p.haproxy, 'utf8'), '#!/bin/sh\necho real haproxy\n');
  assert.equal(existsSync(`${p.haproxy}.nmp-real`), false);
  assert.equal((await dropInState(p)).state, 'disabled');
});

test('kill script: written with --kill-script, a foreign one is refused, disable removes only ours', {
  skip: !asRoot && 'needs root',
}, async (t) => {
  const p = setup(t);
  await enableDropIn(p, { killScript: true }, () => {});
  const script = readFileSync(join(p.killScriptsPath, 'haproxy-kill'), 'utf8');
  assert.match(script, new RegExp(`exec ${p.hooksProgram} haproxy-kill "\\$@"`));
  assert.equal((await dropInState(p)).killScript, 'ours');
  await disableDropIn(p, () => {});
  assert.equal(existsSync(join(p.killScriptsPath, 'haproxy-kill')), false);
  writeFileSync(join(p.killScriptsPath, 'haproxy-kill'), "#!/bin/sh\n# the site's own\n", { mode: 0o755 });
  await assert.rejects(
    enableDropIn(p, { killScript: true }, () => {}),
    /exists and is not ours/,
  );
  await disableDropIn(p, () => {});
  assert.equal(
    readFileSync(join(p.killScriptsPath, 'haproxy-kill'), 'utf8'),
    "#!/bin/sh\n# the site's own\n",
  );
});

test("another package's diversion is left alone; a half-done switch is 'partial'", {
  skip: !asRoot && 'needs root',
}, async (t) => {
  const p = setup(t);
  writeFileSync(join(p.root, 'dpkg/diversion'), `kolla-haproxy ${p.haproxy}.distrib ${p.haproxy}\n`);
  await assert.rejects(
    enableDropIn(p, { killScript: false }, () => {}),
    /already diverted by 'kolla-haproxy'/,
  );
  assert.equal(readFileSync(p.haproxy, 'utf8'), '#!/bin/sh\necho real haproxy\n');
  rmSync(join(p.root, 'dpkg/diversion'));
  // Diverted by us but the link gone (someone reinstalled haproxy's file by hand): partial, and disable mends it.
  await enableDropIn(p, { killScript: false }, () => {});
  rmSync(p.haproxy);
  const s = await dropInState(p);
  assert.equal(s.state, 'partial');
  await disableDropIn(p, () => {});
  assert.equal(readFileSync(p.haproxy, 'utf8'), '#!/bin/sh\necho real haproxy\n');
  assert.equal((await dropInState(p)).state, 'disabled');
});

test('without dpkg-divert: enable says how to do it without dpkg', {
  skip: !asRoot && 'needs root',
}, async (t) => {
  const p = { ...setup(t), dpkgDivert: '/nonexistent/dpkg-divert' };
  await assert.rejects(
    enableDropIn(p, { killScript: false }, () => {}),
    /exec_dirs/,
  );
});
