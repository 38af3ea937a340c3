/*
 * As root: the release artefacts used as an operator uses them. `npm run package`'s builder makes the
 * .deb and the tarball; `dpkg -i` installs the package on this machine, and every installed program then
 * runs in a mount namespace where every node on PATH is covered by a stand-in that fails: the package must
 * bring its own runtime. Then: --version/--help of each command; systemd-analyze verify of the installed
 * units; the installed agent (stock-style neutron.conf + metadata_agent.ini) with the installed proxy that
 * the installed `metadata-hooks dhcp add` starts in a qdhcp-style namespace, read by cloud-init's own code
 * from an instance namespace over IPv4 and IPv6; an upgrade to a higher version built in the same run
 * (a conffile edit kept, nothing running restarted); the haproxy drop-in with neutron's own
 * MetadataDriver; dpkg -r then dpkg -P leaving no file of ours; a node with a neutron user; a second
 * build of the same commit byte for byte; and the tarball running the same chain from where it was
 * unpacked. The package is purged (and the haproxy diversion undone) afterwards, also on failure.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isProcessAlive, NetnsLab, requireRoot, sleep, tempDir } from '@nmp/testkit';
import { buildRelease, sourceDateEpoch } from '../src/build.js';
import { PROGRAMS, REPO_ROOT } from '../src/layout.js';
import {
  assertInstanceServed,
  cloudInitRead,
  difference,
  exeOf,
  fsInventory,
  hiddenNodePrefix,
  type InstalledChain,
  must,
  NET,
  PYTHON,
  processesRunning,
  proxyPidOf,
  sh,
  startInstalledChain,
  VM,
} from './installed-fixture.js';

const PREFIX = '/usr/lib/nmp';
const RELEASE_CLI = join(REPO_ROOT, 'packages/release/dist/src/cli.js');
const DRIVER = fileURLToPath(new URL('../../test/neutron-metadata-driver.py', import.meta.url));
const UNITS = '/lib/systemd/system';

function missingTools(): string | undefined {
  for (const tool of [
    'dpkg',
    'dpkg-deb',
    'dpkg-divert',
    'dpkg-shlibdeps',
    'unshare',
    'systemd-analyze',
    'strip',
  ])
    if (sh(['sh', '-c', `command -v ${tool}`]).code !== 0)
      return `${tool} is missing (.ci/run installs dpkg-dev, lintian, systemd and man-db)`;
  if (
    sh([PYTHON, '-c', 'import cloudinit.sources.DataSourceOpenStack, neutron.agent.metadata.driver']).code !==
    0
  )
    return 'cloud-init or python3-neutron is missing (.ci/run installs both)';
  if (!existsSync('/usr/sbin/haproxy')) return 'haproxy is missing (.ci/run installs it)';
  return undefined;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: a dpkg-query format, not a template.
const installed = () => sh(['dpkg-query', '-W', '-f=${db:Status-Status}', 'nmp']).stdout.trim();

/** Undo everything the package may have left on this machine (a failed run included). */
function purgeNmp(): void {
  if (existsSync(`${PREFIX}/bin/metadata-hooks`))
    sh([`${PREFIX}/bin/metadata-hooks`, 'haproxy-drop-in', 'disable', '--quiet']);
  if (installed() !== '') sh(['dpkg', '--purge', 'nmp']);
  // A diversion without the package (should not happen: prerm undoes it) must not outlive the test.
  if (sh(['dpkg-divert', '--listpackage', '/usr/sbin/haproxy']).stdout.trim() === 'nmp') {
    if (lstatSync('/usr/sbin/haproxy', { throwIfNoEntry: false })?.isSymbolicLink())
      rmSync('/usr/sbin/haproxy');
    sh(['dpkg-divert', '--package', 'nmp', '--remove', '--rename', '/usr/sbin/haproxy']);
  }
}

interface Build {
  readonly done: Promise<void>;
  output(): string;
}

/** `npm run package`'s CLI in the background, with another umask than this process (it must not matter). */
function backgroundBuild(args: readonly string[]): Build {
  let out = '';
  const child = spawn('sh', ['-c', 'umask 077 && exec "$@"', 'sh', process.execPath, RELEASE_CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (c: Buffer) => {
    out += c;
  });
  child.stderr.on('data', (c: Buffer) => {
    out += c;
  });
  const done = new Promise<void>((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`build ${args.join(' ')}: exit ${code}\n${out}`)),
    ),
  );
  done.catch(() => {}); // awaited by the subtest that needs it
  return { done, output: () => out };
}

const LOCK = '/run/lock/nmp-installed-package-test';

/**
 * Waits (at most 25 minutes) until no other live process holds the machine's lock (a directory made
 * atomically, with the holder's pid in it; a dead holder's lock is taken over), takes it, and returns
 * its release.
 */
async function machineLock(t: { diagnostic(m: string): void }): Promise<() => void> {
  const pidFile = join(LOCK, 'pid');
  let said = false;
  for (const end = Date.now() + 25 * 60_000; ; ) {
    try {
      mkdirSync(LOCK);
      writeFileSync(pidFile, String(process.pid));
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = 0; // not written yet, or the lock just went
    try {
      holder = Number(readFileSync(pidFile, 'utf8')) || 0;
    } catch {}
    const age = Date.now() - (statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    if (holder > 0 ? !isProcessAlive(holder) : age > 10_000) {
      rmSync(LOCK, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > end) throw new Error(`${LOCK} is still held by pid ${holder || '?'}`);
    if (!said) t.diagnostic(`waiting for ${LOCK} (pid ${holder || '?'}: another run of this test)`);
    said = true;
    await sleep(holder > 0 ? 2000 : 200);
  }
}

async function waitGone(pid: number, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (!isProcessAlive(pid)) return true;
    await sleep(100);
  }
  return !isProcessAlive(pid);
}

test('the release as installed: .deb and tarball on this machine, without a system node', {
  timeout: 25 * 60_000,
}, async (t) => {
  if (!requireRoot(t)) return;
  const missing = missingTools();
  if (missing) {
    t.skip(missing);
    return;
  }
  // One run at a time per machine: another checkout's run of this test (a developer's beside CI) would
  // have its package purged under it.
  t.after(await machineLock(t));
  const dir = tempDir(t, 'nmp-installed-');
  chmodSync(dir, 0o755); // the proxies run as nobody and must reach the agent's socket in here
  purgeNmp();
  let createdNeutronUser = false;
  t.after(() => {
    purgeNmp();
    if (createdNeutronUser) sh(['userdel', 'neutron']);
  });
  const hidden = hiddenNodePrefix(dir);
  const run = (...argv: string[]) => sh([...hidden, ...argv]);

  const epoch = sourceDateEpoch();
  const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
    .version;
  const higher = `${version}+upgrade1`;
  const started = Date.now();
  const r1 = await buildRelease({ outDir: join(dir, 'r1'), sourceDateEpoch: epoch });
  t.diagnostic(`built ${r1.deb} and ${r1.tarball} in ${Date.now() - started} ms`);
  const again = backgroundBuild(['--out-dir', join(dir, 'r2'), '--source-date-epoch', String(epoch)]);
  const upgrade = backgroundBuild([
    '--out-dir',
    join(dir, 'r3'),
    '--source-date-epoch',
    String(epoch),
    '--version',
    higher,
    '--no-tarball',
  ]);
  const before = fsInventory();
  const beforeNeutron = neutronFiles();

  await t.test('dpkg -i: installed; nothing enabled, started or diverted; a service user of our own', () => {
    assert.equal(sh(['getent', 'passwd', 'neutron']).code, 2, 'this machine has no neutron user');
    must(['dpkg', '-i', r1.deb]);
    assert.equal(installed(), 'installed');
    assert.equal(sh(['getent', 'passwd', 'nmp']).code, 0, 'postinst made the nmp user');
    for (const u of ['nmp-metadata-agent.service', 'nmp-ns-metadata-proxy@.service']) {
      const dropIn = readFileSync(`/etc/systemd/system/${u}.d/50-nmp-service-user.conf`, 'utf8');
      assert.match(dropIn, /^User=nmp$/m, u);
    }
    // The agent's socket, held by systemd, belongs to the same user.
    const socketDropIn = readFileSync(
      '/etc/systemd/system/nmp-metadata-agent.socket.d/50-nmp-service-user.conf',
      'utf8',
    );
    assert.match(socketDropIn, /^\[Socket\]\nSocketUser=nmp\nSocketGroup=nmp$/m);
    const owner = (p: string) => sh(['stat', '-c', '%U:%G %a', p]).stdout.trim();
    assert.equal(owner('/var/lib/nmp'), 'nmp:nmp 750');
    assert.equal(owner('/var/log/nmp'), 'nmp:adm 2750');
    assert.equal(owner('/etc/nmp/metadata-agent.env'), 'root:root 600');
    assert.deepEqual(processesRunning(`${PREFIX}/`), [], 'the package started something');
    const wants = readdirSync('/etc/systemd/system').filter((d) => d.endsWith('.wants'));
    for (const w of wants)
      assert.deepEqual(
        readdirSync(join('/etc/systemd/system', w)).filter((n) => n.startsWith('nmp-')),
        [],
        w,
      );
    assert.equal(sh(['dpkg-divert', '--listpackage', '/usr/sbin/haproxy']).stdout.trim(), '');
    for (const p of PROGRAMS) assert.equal(readlinkSync(`/usr/bin/${p.name}`), `../lib/nmp/bin/${p.name}`);
    // Only production code ships: no TypeScript, no test, no node_modules, no source map.
    const files = sh(['dpkg', '-L', 'nmp']).stdout.split('\n');
    assert.deepEqual(
      files.filter((f) => /node_modules|\/test\/|\.ts$|\.map$/.test(f)),
      [],
    );
  });

  await t.test('lintian: no error and no warning (overrides carry their reasons)', () => {
    const r = sh(['lintian', '--allow-root', '--fail-on', 'error,warning', '--info', r1.deb]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  await t.test('every installed command answers --version and --help with no system node to be found', () => {
    // The stand-in really is in the way: a system node cannot run in there.
    const blocked = run('node', '--version');
    assert.equal(blocked.code, 99, `system node still reachable: ${blocked.stdout}${blocked.stderr}`);
    for (const p of PROGRAMS) {
      const v = run(p.name, '--version');
      assert.equal(v.code, 0, `${p.name} --version: ${v.stderr}`);
      assert.equal(v.stdout.trim(), version, p.name);
      const h = run(p.name, '--help');
      assert.equal(h.code, 0, `${p.name} --help: ${h.stderr}`);
      assert.match(h.stdout, new RegExp(`^${p.name}`), p.name);
      assert.doesNotMatch(h.stderr, /SYSTEM NODE USED/);
      assert.equal(sh(['man', '-w', p.name]).stdout.trim(), `/usr/share/man/man8/${p.name}.8.gz`);
    }
  });

  await t.test('systemd-analyze verify: the installed units', () => {
    const units = readdirSync(UNITS)
      .filter((f) => f.startsWith('nmp-'))
      .map((f) => join(UNITS, f));
    assert.ok(units.length >= 4, units.join(' '));
    const r = sh(['systemd-analyze', 'verify', ...units]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const u of units.filter((f) => f.endsWith('.service')))
      assert.match(readFileSync(u, 'utf8'), /^ExecStart=\/usr\/lib\/nmp\/bin\//m, u);
    const sockets = units.filter((f) => f.endsWith('.socket')).map((f) => f.slice(UNITS.length + 1));
    assert.deepEqual(sockets.sort(), ['nmp-metadata-agent.socket', 'nmp-ns-metadata-proxy@.socket']);
  });

  const lab = await NetnsLab.create(t);
  let chain: InstalledChain | undefined;
  const withChain = async (body: (c: InstalledChain) => Promise<void>) => {
    assert.ok(chain, 'the chain did not start');
    try {
      await body(chain);
    } catch (err) {
      if (err instanceof Error) err.message += `\n${chain.diagnostics()}`;
      throw err;
    }
  };

  await t.test(
    'installed chain: dhcp add starts the installed proxy, cloud-init reads through it',
    async () => {
      chain = await startInstalledChain(lab, join(dir, 'chain'), '/usr/bin', hidden);
      await withChain(async (c) => {
        const add = await c.hooks('dhcp', 'add', NET, '--device', c.tap, '--ipv6');
        assert.equal(add.code, 0, `${add.stdout}${add.stderr}`);
        await assertInstanceServed(lab, c);
        const proxy = proxyPidOf(c);
        assert.equal(exeOf(proxy), `${PREFIX}/bin/node`, 'the proxy runs on the release runtime');
        assert.equal(exeOf(c.agent.pid), `${PREFIX}/bin/node`, 'the agent runs on the release runtime');
        const status = await c.hooks('status');
        assert.equal(status.code, 0, status.stdout);
      });
    },
  );

  await t.test('upgrade to a higher version: the conffile edit kept, nothing running restarted', async () => {
    await upgrade.done;
    await withChain(async (c) => {
      const conffile = '/etc/nmp/metadata-hooks.ini';
      const edit = `# operator's edit ${epoch}\nipv6_dad_timeout = 7\n`;
      appendFileSync(conffile, edit);
      const proxy = proxyPidOf(c);
      must(['dpkg', '-i', join(dir, 'r3', `nmp_${higher}_amd64.deb`)]);
      assert.ok(readFileSync(conffile, 'utf8').endsWith(edit), 'the edit of the conffile is gone');
      assert.equal(run('metadata-agent', '--version').stdout.trim(), higher);
      for (const [name, pid] of [
        ['agent', c.agent.pid],
        ['proxy', proxy],
      ] as const) {
        assert.ok(isProcessAlive(pid), `${name} ${pid} was stopped by the upgrade`);
        assert.match(exeOf(pid), /\(deleted\)$/, `${name} still runs the old runtime`);
      }
      // The old processes still serve; the upgraded hooks see the same proxy and leave it alone.
      await assertInstanceServed(lab, c);
      const again = await c.hooks('dhcp', 'add', NET, '--device', c.tap, '--ipv6');
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /unchanged/);
      assert.equal(proxyPidOf(c), proxy);
    });
  });

  await t.test(
    'haproxy drop-in: neutron MetadataDriver starts our proxy through haproxy; back with one command',
    async () => {
      await withChain(async (c) => {
        // dhcp remove takes the hooks' proxy and addresses away, as before any drop-in.
        const remove = await c.hooks('dhcp', 'remove', NET);
        assert.equal(remove.code, 0, remove.stderr);
        const realHaproxy = sh(['/usr/sbin/haproxy', '-v']).stdout.split('\n')[0];
        const on = run('metadata-hooks', 'haproxy-drop-in', 'enable');
        assert.equal(on.code, 0, on.stdout + on.stderr);
        assert.equal(readlinkSync('/usr/sbin/haproxy'), `${PREFIX}/bin/haproxy`);
        assert.equal(sh(['dpkg-divert', '--listpackage', '/usr/sbin/haproxy']).stdout.trim(), 'nmp');
        assert.equal(
          sh(['/usr/sbin/haproxy', '-v']).stdout.split('\n')[0],
          realHaproxy,
          'other uses reach haproxy',
        );
        assert.equal(run('metadata-hooks', 'haproxy-drop-in', 'status').code, 0);
        // What neutron's DHCP agent does for a network: the address on its port, then its driver.
        await lab.addAddress(c.dhcpNs, c.tap, '169.254.169.254/32');
        const neutronState = join(dir, 'neutron-state');
        mkdirSync(neutronState, { recursive: true });
        const driver = (action: string) =>
          sh([...hidden, PYTHON, DRIVER, action, c.dhcpNs, NET, neutronState, c.socketPath]);
        const spawned = driver('spawn');
        assert.equal(spawned.code, 0, spawned.stderr);
        const view = JSON.parse(spawned.stdout.trim().split('\n').pop()!) as {
          active: boolean;
          pid: number;
          cmdline: string[];
        };
        assert.equal(view.active, true, spawned.stdout + spawned.stderr);
        assert.equal(exeOf(view.pid), `${PREFIX}/bin/node`, 'neutron started our proxy, not haproxy');
        assert.match(view.cmdline.join(' '), new RegExp(`^ns-metadata-proxy network ${NET}`));
        const md = await cloudInitRead(c.vmNs, 'http://169.254.169.254');
        assert.equal(md.uuid, VM.uuid);
        const destroyed = driver('destroy');
        assert.equal(destroyed.code, 0, destroyed.stderr);
        assert.equal(
          (JSON.parse(destroyed.stdout.trim().split('\n').pop()!) as { active: boolean }).active,
          false,
        );
        assert.ok(await waitGone(view.pid), 'neutron could not stop our proxy');
        assert.equal(existsSync(join(neutronState, 'ns-metadata-proxy', `${NET}.conf`)), false);
        const off = run('metadata-hooks', 'haproxy-drop-in', 'disable');
        assert.equal(off.code, 0, off.stdout + off.stderr);
        assert.equal(lstatSync('/usr/sbin/haproxy').isSymbolicLink(), false);
        assert.equal(sh(['dpkg-divert', '--listpackage', '/usr/sbin/haproxy']).stdout.trim(), '');
        assert.equal(sh(['/usr/sbin/haproxy', '-v']).stdout.split('\n')[0], realHaproxy);
        await c.agent.stop();
      });
    },
  );

  await t.test(
    'dpkg -r keeps the conffiles; dpkg -P leaves no file of ours and touches nothing of neutron',
    async () => {
      // The haproxy drop-in on at removal: prerm gives haproxy back.
      assert.equal(run('metadata-hooks', 'haproxy-drop-in', 'enable').code, 0);
      // Enabled as an operator does (the agent with its socket, a proxy and its listeners): the links go
      // with the purge. systemctl only writes links here, no systemd runs.
      must([
        'systemctl',
        'enable',
        'nmp-metadata-agent.service',
        'nmp-ns-metadata-proxy@qdhcp-0a1b2c3d.service',
        'nmp-ns-metadata-proxy@qdhcp-0a1b2c3d.socket',
      ]);
      for (const link of [
        'sockets.target.wants/nmp-metadata-agent.socket',
        'sockets.target.wants/nmp-ns-metadata-proxy@qdhcp-0a1b2c3d.socket',
      ])
        assert.ok(lstatSync(`/etc/systemd/system/${link}`).isSymbolicLink(), link);
      must(['dpkg', '-r', 'nmp']);
      assert.equal(installed(), 'config-files');
      assert.equal(existsSync(PREFIX), false);
      assert.equal(existsSync('/usr/bin/metadata-agent'), false);
      assert.equal(existsSync('/etc/nmp/metadata-hooks.ini'), true, 'dpkg -r removed a conffile');
      assert.equal(lstatSync('/usr/sbin/haproxy').isSymbolicLink(), false, 'prerm left the diversion');
      assert.equal(sh(['dpkg-divert', '--listpackage', '/usr/sbin/haproxy']).stdout.trim(), '');
      must(['dpkg', '-P', 'nmp']);
      assert.equal(installed(), '');
      const after = fsInventory();
      assert.deepEqual(difference(after, before), [], 'left behind after purge');
      assert.deepEqual(difference(before, after), [], 'removed by the package although not its own');
      assert.deepEqual(neutronFiles(), beforeNeutron, "neutron's files changed");
    },
  );

  await t.test(
    'a node with a neutron user: the units run as neutron, no drop-in, nothing left after purge',
    () => {
      if (sh(['getent', 'passwd', 'neutron']).code !== 0) {
        must([
          'useradd',
          '--system',
          '--user-group',
          '--no-create-home',
          '--shell',
          '/usr/sbin/nologin',
          'neutron',
        ]);
        createdNeutronUser = true;
      }
      must(['dpkg', '-i', r1.deb]);
      assert.equal(existsSync('/etc/systemd/system/nmp-metadata-agent.service.d'), false);
      assert.match(readFileSync(`${UNITS}/nmp-metadata-agent.service`, 'utf8'), /^User=neutron$/m);
      assert.equal(sh(['stat', '-c', '%U', '/var/lib/nmp']).stdout.trim(), 'neutron');
      must(['dpkg', '-P', 'nmp']);
      if (createdNeutronUser) {
        must(['userdel', 'neutron']);
        createdNeutronUser = false;
      }
      assert.deepEqual(difference(fsInventory(), before), []);
    },
  );

  await t.test(
    'reproducible: a second build of the same commit, under another umask, has the same bytes',
    async () => {
      await again.done;
      assert.equal(readFileSync(join(dir, 'r2', 'SHA256SUMS'), 'utf8'), readFileSync(r1.sums, 'utf8'));
      for (const f of [r1.deb, r1.tarball!]) assert.ok(statSync(f).size > 1e6, f);
    },
  );

  await t.test('the tarball runs the same chain from wherever it is unpacked', async (st) => {
    const where = join(dir, 'somewhere else');
    mkdirSync(where);
    must(['tar', '-xzf', r1.tarball!, '-C', where]);
    const bin = join(where, `nmp-${version}`, 'bin');
    for (const p of PROGRAMS) assert.equal(run(join(bin, p.name), '--version').stdout.trim(), version);
    const lab2 = await NetnsLab.create(st);
    const c = await startInstalledChain(lab2, join(dir, 'tar-chain'), bin, hidden);
    try {
      const add = await c.hooks('dhcp', 'add', NET, '--device', c.tap, '--ipv6');
      assert.equal(add.code, 0, `${add.stdout}${add.stderr}`);
      await assertInstanceServed(lab2, c);
      assert.equal(exeOf(proxyPidOf(c)), join(bin, 'node'));
      const pid = proxyPidOf(c);
      const remove = await c.hooks('dhcp', 'remove', NET);
      assert.equal(remove.code, 0, remove.stderr);
      assert.ok(await waitGone(pid), 'dhcp remove left the proxy running');
      const addrs = (await lab2.ip(c.dhcpNs, ['-o', 'addr', 'show', 'dev', c.tap])).stdout;
      assert.doesNotMatch(addrs, /169\.254\.169\.254|fe80::a9fe:a9fe/, 'dhcp remove left an address');
    } catch (err) {
      if (err instanceof Error) err.message += `\n${c.diagnostics()}`;
      throw err;
    }
  });
});

/** Checksums of neutron's installed files (python3-neutron's, and /etc/neutron if any). */
function neutronFiles(): string {
  const list = sh([
    'sh',
    '-c',
    'dpkg -L python3-neutron 2>/dev/null | grep -v __pycache__; find /etc/neutron -type f 2>/dev/null',
  ]);
  const files = list.stdout.split('\n').filter((f) => f !== '' && existsSync(f) && statSync(f).isFile());
  if (files.length === 0) return '';
  return spawnSync('md5sum', files, { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
}
