#!/usr/bin/env node
/*
 * metadata-hooks: what a network node's DHCP and L3 agents (or the operator) run to plumb instance
 * metadata into a namespace and supervise its proxy.
 *
 *   metadata-hooks dhcp add <network-id> --device <tap> [--ipv6] [--router-id ID]
 *   metadata-hooks dhcp remove <network-id>
 *   metadata-hooks l3 add <router-id> [--ipv6 | --no-ipv6]
 *   metadata-hooks l3 remove <router-id>
 *   metadata-hooks status [--json]
 *   metadata-hooks render-units [--output-dir DIR] [--check] [--layout tree|release]
 *   metadata-hooks haproxy-drop-in enable|disable|status [--kill-script]
 *   metadata-hooks haproxy-compat -f <neutron haproxy config>      (also when invoked as `haproxy`)
 *   metadata-hooks haproxy-kill <signal> <pid>                     (also when invoked as `haproxy-kill`)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  addSchemaOptions,
  createCli,
  envName,
  loadConfig,
  packageVersion,
  releaseRoot,
  runMain,
  type Schema,
  UsageError,
} from '@nmp/common';
// Both are small: haproxy-drop-in.ts needs only node's fs and @nmp/host/command; systemd-units.ts nothing but
// @nmp/common's run-time flags.
import { DROP_IN_DEFAULTS } from './haproxy-drop-in.js';
import type { HooksConfig } from './hook-records.js';
import { haproxyCompatOptions, hooksOptions } from './options.js';
import { DEFAULT_UNIT_SETTINGS, renderUnits } from './systemd-units.js';

// What a command does is loaded when that command runs: `--help`, `status` or the haproxy drop-in do not
// load the code of the others (and nothing here loads the daemon or the proxy: daemon-attach.ts talks to
// the daemon through its client alone).
const dhcpHooks = () => import('./dhcp-hooks.js');
const l3Hooks = () => import('./l3-hooks.js');
const proxyStatus = () => import('./proxy-status.js');
const haproxyCompatModule = () => import('./haproxy-compat.js');

const PROGRAM = 'metadata-hooks';
const VERSION = packageVersion(import.meta.url);
/** Set when we run from a release tree: render-units then defaults to that tree's programs. */
const RELEASE_ROOT = releaseRoot(import.meta.url);

const say = (m: string) => process.stdout.write(`${m}\n`);

/** `  NMP_X  what it does` lines, from the schema (the man page takes them from this help). */
function environmentHelp(schema: Schema): string {
  const names = Object.values(schema).map((d) => envName(d));
  const width = Math.max(...names.map((n) => n.length));
  return Object.values(schema)
    .map((d, i) => `  ${names[i]!.padEnd(width)}  ${d.help}`)
    .join('\n');
}

const HAPROXY_COMPAT_HELP = `${PROGRAM} haproxy-compat [-c] [-p PIDFILE] -f <neutron haproxy config>

Behave as neutron's haproxy for its metadata proxy (also when run under the name haproxy: the haproxy drop-in): validate the file with the proxy's parser, start ns-metadata-proxy --haproxy-config FILE detached in the current namespace, wait until its pid file names a live process, and exit 0, or 1 with the proxy's output.

Options:
  -f FILE     the config neutron wrote ($state_path/ns-metadata-proxy/<id>.conf)
  -c          only check the file
  -p FILE     pid file (default: the file's pidfile)
  -v          print the version
  -h, --help  Show help

Environment (no config file is read in this mode):
${environmentHelp(haproxyCompatOptions)}
`;

async function haproxyCompat(argv: readonly string[]): Promise<void> {
  const { checkHaproxyConfig, parseHaproxyArgs, startFromHaproxyConfig } = await haproxyCompatModule();
  const { proxyProgram } = await import('./proxy-launch.js');
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HAPROXY_COMPAT_HELP);
    return;
  }
  let args: ReturnType<typeof parseHaproxyArgs>;
  try {
    args = parseHaproxyArgs(argv);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (args.version) {
    say(`nmp ns-metadata-proxy (haproxy-compatible front end of metadata-hooks) version ${VERSION}`);
    return;
  }
  // neutron passes haproxy's arguments only: no config file, no flags of ours, the environment alone.
  const settings = loadConfig(haproxyCompatOptions, { flags: {}, env: process.env }).config;
  const program = proxyProgram(settings);
  const file = args.configFiles[0]!;
  const parsed = await checkHaproxyConfig(file);
  if (args.checkOnly) {
    say(`Configuration file is valid (${parsed.mode} ${parsed.id})`);
    return;
  }
  const pidFile = args.pidFile ?? parsed.pidFile;
  if (!pidFile)
    throw new UsageError(`${file}: no 'pidfile' in global and no -p given; cannot report readiness`);
  const pid = await startFromHaproxyConfig({
    program,
    configFile: file,
    pidFile,
    timeoutMs: 10_000,
    // Beside the config unless haproxy_compat_log_dir says where (neutron deletes the .conf, not the log).
    logFile: settings.logDir !== '' ? join(settings.logDir, `${basename(file)}.log`) : `${file}.log`,
  });
  process.stderr.write(`${PROGRAM}: ns-metadata-proxy ${parsed.mode} ${parsed.id} running (pid ${pid})\n`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const invokedAs = basename(process.argv[1] ?? '');
  if (invokedAs === 'haproxy') return haproxyCompat(argv);
  if (invokedAs === 'haproxy-kill')
    return (await haproxyCompatModule()).haproxyKill(argv[0] ?? '', argv[1] ?? '');
  if (argv[0] === 'haproxy-compat') return haproxyCompat(argv.slice(1));

  let done: Promise<void> = Promise.resolve();
  const loadHooksConfig = (flags: Record<string, unknown>): HooksConfig => {
    const loaded = loadConfig(hooksOptions, { flags, env: process.env });
    for (const w of loaded.warnings) process.stderr.write(`${PROGRAM}: warning: ${w}\n`);
    return loaded.config;
  };
  const cli = addSchemaOptions(
    createCli(PROGRAM, VERSION, argv).usage(
      '$0 <command>\n\nPlumb instance metadata into DHCP and router namespaces and supervise their proxies.',
    ),
    hooksOptions,
  )
    .command(
      'dhcp <action> <network-id>',
      'add: metadata addresses on the DHCP device + proxy in the network namespace; remove: undo',
      (y) =>
        y
          .positional('action', { choices: ['add', 'remove'] as const, demandOption: true })
          .positional('network-id', { type: 'string', demandOption: true })
          .option('device', { type: 'string', requiresArg: true, describe: "the DHCP port's device (add)" })
          .option('ipv6', {
            type: 'boolean',
            default: false,
            describe: 'the network has IPv6: also serve [fe80::a9fe:a9fe]:80 (after DAD)',
          })
          .option('router-id', {
            type: 'string',
            requiresArg: true,
            describe: "stamp this router's id instead (neutron's enable_metadata_network case)",
          })
          .option('proxy', {
            type: 'boolean',
            default: true,
            describe:
              'start the proxy (--no-proxy: addresses only; run it with nmp-ns-metadata-proxy@.service)',
          }),
      (a) => {
        const config = loadHooksConfig(a);
        if (a.action === 'add') {
          const device = a.device;
          if (!device) throw new UsageError('dhcp add needs --device <dev>');
          done = dhcpHooks()
            .then(({ dhcpAdd }) =>
              dhcpAdd(
                config,
                {
                  networkId: a.networkId,
                  device,
                  ipv6: a.ipv6,
                  startProxy: a.proxy,
                  ...(a.routerId !== undefined ? { routerId: a.routerId } : {}),
                },
                say,
              ),
            )
            .then(() => {});
        } else done = dhcpHooks().then(({ dhcpRemove }) => dhcpRemove(config, a.networkId, say));
      },
    )
    .command(
      'l3 <action> <router-id>',
      'add: iptables REDIRECT/MARK/ACCEPT/DROP in our chains + proxy on metadata_port; remove: undo',
      (y) =>
        y
          .positional('action', { choices: ['add', 'remove'] as const, demandOption: true })
          .positional('router-id', { type: 'string', demandOption: true })
          .option('ipv6', {
            type: 'boolean',
            describe: 'IPv6 rules and a dual-stack bind (default: if IPv6 is enabled in the namespace)',
          })
          .option('proxy', {
            type: 'boolean',
            default: true,
            describe: 'start the proxy (--no-proxy: rules only; run it with nmp-ns-metadata-proxy@.service)',
          }),
      (a) => {
        const config = loadHooksConfig(a);
        if (a.action === 'add')
          done = l3Hooks()
            .then(({ l3Add }) =>
              l3Add(
                config,
                {
                  routerId: a.routerId,
                  startProxy: a.proxy,
                  ...(a.ipv6 !== undefined ? { ipv6: a.ipv6 } : {}),
                },
                say,
              ),
            )
            .then(() => {});
        else done = l3Hooks().then(({ l3Remove }) => l3Remove(config, a.routerId, say));
      },
    )
    .command(
      'status',
      'which proxies run, for which network/router, pid, listening addresses, healthy or not',
      (y) => y.option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
      (a) => {
        const config = loadHooksConfig(a);
        done = proxyStatus().then(async ({ formatStatus, proxyStatus }) => {
          const list = await proxyStatus(config);
          process.stdout.write(a.json ? `${JSON.stringify(list, null, 2)}\n` : formatStatus(list));
          if (list.some((s) => !s.healthy)) process.exitCode = 3;
        });
      },
    )
    .command(
      'render-units',
      'write the systemd units (or --check that the files in --output-dir are up to date)',
      (y) =>
        y
          .option('output-dir', {
            type: 'string',
            requiresArg: true,
            describe: 'directory for the unit files',
          })
          .option('check', {
            type: 'boolean',
            default: false,
            describe: 'compare instead of writing; exit 1 on drift',
          })
          .option('layout', {
            choices: ['tree', 'release'] as const,
            default: RELEASE_ROOT === undefined ? ('tree' as const) : ('release' as const),
            describe:
              'tree: run node on a built repository; release: run the programs of a release tree (its bin/)',
          })
          .option('node', {
            type: 'string',
            default: DEFAULT_UNIT_SETTINGS.node,
            describe: 'path of node (layout tree)',
          })
          .option('install-dir', {
            type: 'string',
            default: RELEASE_ROOT ?? DEFAULT_UNIT_SETTINGS.installDir,
            describe:
              'where nmp is installed (the repository, or the release tree: /usr/lib/nmp for the package)',
          })
          .option('user', { type: 'string', default: DEFAULT_UNIT_SETTINGS.user })
          .option('group', { type: 'string', default: DEFAULT_UNIT_SETTINGS.group })
          .option('config-dir', { type: 'string', default: DEFAULT_UNIT_SETTINGS.configDir }),
      (a) => {
        const units = renderUnits({
          layout: a.layout,
          node: a.node,
          installDir: a.installDir,
          user: a.user,
          group: a.group,
          configDir: a.configDir,
          statePath: DEFAULT_UNIT_SETTINGS.statePath,
        });
        const dir = a.outputDir;
        if (!dir) {
          for (const [name, text] of units) process.stdout.write(`### ${name}\n${text}\n`);
          return;
        }
        let drift = 0;
        for (const [name, text] of units) {
          const file = join(dir, name);
          if (a.check) {
            let current = '';
            try {
              current = readFileSync(file, 'utf8');
            } catch {
              // missing counts as drift
            }
            if (current !== text) {
              drift++;
              process.stderr.write(
                `${PROGRAM}: ${file} is out of date; run render-units --output-dir ${dir}\n`,
              );
            }
          } else {
            mkdirSync(dirname(file), { recursive: true });
            writeFileSync(file, text);
            say(`wrote ${file}`);
          }
        }
        if (drift > 0) process.exitCode = 1;
      },
    )
    .command(
      'haproxy-drop-in <action>',
      "enable: neutron's metadata haproxies become ours (dpkg-divert of /usr/sbin/haproxy); disable: undo; status",
      (y) =>
        y
          .positional('action', { choices: ['enable', 'disable', 'status'] as const, demandOption: true })
          .option('kill-script', {
            type: 'boolean',
            default: false,
            describe:
              'enable: also write <kill-scripts-path>/haproxy-kill (neutron releases whose rootwrap kills haproxy by executable; not needed from Zed)',
          })
          .option('haproxy', {
            type: 'string',
            default: DROP_IN_DEFAULTS.haproxy,
            describe: 'the haproxy neutron runs',
          })
          .option('kill-scripts-path', {
            type: 'string',
            default: DROP_IN_DEFAULTS.killScriptsPath,
            describe: "neutron's [AGENT] kill_scripts_path",
          })
          .option('release-root', {
            type: 'string',
            ...(RELEASE_ROOT !== undefined ? { default: RELEASE_ROOT } : {}),
            describe: 'the installed nmp release tree whose bin/haproxy serves neutron (/usr/lib/nmp)',
          })
          .option('quiet', {
            type: 'boolean',
            default: false,
            describe: 'say nothing unless something changes',
          }),
      (a) => {
        done = import('./haproxy-drop-in.js').then(async (m) => {
          if (a.releaseRoot === undefined)
            throw new UsageError(
              'not running from an installed release: give --release-root (e.g. /usr/lib/nmp), or see docs/deployment.md section 6',
            );
          const paths = {
            haproxy: a.haproxy,
            wrapper: join(a.releaseRoot, 'bin', 'haproxy'),
            hooksProgram: join(a.releaseRoot, 'bin', PROGRAM),
            killScriptsPath: a.killScriptsPath,
            dpkgDivert: DROP_IN_DEFAULTS.dpkgDivert,
          };
          const quietSay = a.quiet ? () => {} : say;
          if (a.action === 'enable') return m.enableDropIn(paths, { killScript: a.killScript }, say);
          if (a.action === 'disable') return m.disableDropIn(paths, quietSay);
          const state = await m.dropInState(paths);
          for (const line of m.formatDropInState(state, paths)) quietSay(line);
          if (state.state === 'partial') process.exitCode = 3;
        });
      },
    )
    .command('haproxy-compat', "behave as neutron's haproxy: -f <config> (--help: its options)")
    .command(
      'haproxy-kill <signal> <pid>',
      'kill script for neutron: signal pid only if it is our proxy',
      {},
      (a) => {
        done = haproxyCompatModule().then(({ haproxyKill }) => haproxyKill(String(a.signal), String(a.pid)));
      },
    )
    .demandCommand(1, 'a command is required')
    .strict();
  await cli.parseAsync();
  await done;
}

runMain(PROGRAM, main);
