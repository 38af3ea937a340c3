/*
 * ConfigReloader: what a reload applies (secret, log level, readiness window, inventory contents), what
 * waits for a restart (one warning naming the options), and that a bad file or a bad inventory keeps the
 * whole running configuration with one error line.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { loadConfig, signInstanceId } from '@nmp/common';
import { AgentMetrics } from '../src/metrics.js';
import { AGENT_COMPAT, agentSchema } from '../src/options.js';
import { Readiness } from '../src/readiness.js';
import { ConfigReloader } from '../src/reload.js';
import { InventoryResolver } from '../src/resolver/inventory-resolver.js';
import { InstanceSigner } from '../src/signer.js';
import { captureLogs, INSTANCE, NET, PORTS, tempDir } from './helpers.js';
import { sample } from './prom-text.js';

interface Fixture {
  readonly conf: string;
  readonly inventoryFile: string;
  readonly reloader: ConfigReloader;
  readonly signer: InstanceSigner;
  readonly logs: ReturnType<typeof captureLogs>;
  readonly inventory: InventoryResolver;
  readonly readiness: Readiness;
  readonly metrics: AgentMetrics;
}

function settings(inventoryFile: string, extra: string): string {
  return `[DEFAULT]\nresolver = inventory\ninventory_file = ${inventoryFile}\n${extra}\n`;
}

async function fixture(t: TestContext, extra: string): Promise<Fixture> {
  const dir = tempDir(t);
  const inventoryFile = join(dir, 'ports.json');
  writeFileSync(inventoryFile, JSON.stringify({ ports: PORTS }));
  const conf = join(dir, 'agent.ini');
  writeFileSync(conf, settings(inventoryFile, extra), { mode: 0o600 });
  const load = () =>
    loadConfig(agentSchema, { flags: { 'config-file': [conf] }, env: {}, compat: AGENT_COMPAT });
  const initial = load().config;
  const logs = captureLogs();
  logs.logger.level = initial.logLevel;
  const signer = new InstanceSigner(initial.sharedSecret);
  const inventory = await InventoryResolver.fromFile(inventoryFile);
  const readiness = new Readiness({
    windowMs: initial.readinessWindow * 1000,
    probeTimeoutMs: 100,
    probeNova: async () => {},
    probeResolver: async () => {},
  });
  const metrics = new AgentMetrics();
  const reloader = new ConfigReloader(load, initial, {
    signer,
    logger: logs.logger,
    inventory,
    readiness,
    metrics,
  });
  return { conf, inventoryFile, reloader, signer, logs, inventory, readiness, metrics };
}

test('a rotated secret, a new log level and readiness window apply at once', async (t) => {
  const f = await fixture(t, 'metadata_proxy_shared_secret = old-secret\nlog_level = info');
  assert.equal(f.signer.sign(INSTANCE), signInstanceId('old-secret', INSTANCE));
  writeFileSync(
    f.conf,
    settings(
      f.inventoryFile,
      'metadata_proxy_shared_secret = new-secret\nlog_level = debug\nreadiness_window = 5',
    ),
  );
  const outcome = await f.reloader.reload();
  assert.deepEqual(outcome, {
    ok: true,
    applied: ['metadata_proxy_shared_secret', 'log_level', 'readiness_window'],
    restartNeeded: [],
  });
  assert.equal(f.signer.sign(INSTANCE), signInstanceId('new-secret', INSTANCE));
  assert.equal(f.logs.logger.level, 'debug');
  assert.equal(f.readiness.windowMs, 5000);
  assert.equal(f.reloader.config.sharedSecret, 'new-secret');
  const done = f.logs.lines().find((l) => l.code === 'MDA_CONFIG_RELOADED');
  assert.deepEqual(done?.applied, ['metadata_proxy_shared_secret', 'log_level', 'readiness_window']);
  assert.ok(!f.logs.text().includes('new-secret') && !f.logs.text().includes('old-secret'));
  assert.equal(sample(await f.metrics.render(), 'nmp_agent_config_reloads_total', { result: 'success' }), 1);
  // debug = True wins over log_level, as in neutron.
  writeFileSync(
    f.conf,
    settings(f.inventoryFile, 'metadata_proxy_shared_secret = new-secret\nlog_level = warn\ndebug = true'),
  );
  await f.reloader.reload();
  assert.equal(f.logs.logger.level, 'debug');
});

test('options that need a restart keep their running value, and one warning names them', async (t) => {
  const f = await fixture(t, 'metadata_proxy_shared_secret = s\nnova_metadata_port = 8775');
  writeFileSync(
    f.conf,
    settings(
      f.inventoryFile,
      'metadata_proxy_shared_secret = s2\nnova_metadata_port = 9999\nmetadata_backlog = 10',
    ),
  );
  const outcome = await f.reloader.reload();
  assert.equal(outcome.ok, true);
  assert.deepEqual(outcome.applied, ['metadata_proxy_shared_secret']);
  assert.deepEqual(outcome.restartNeeded, ['metadata_backlog', 'nova_metadata_port']);
  assert.equal(f.reloader.config.novaPort, 8775);
  assert.equal(f.reloader.config.sharedSecret, 's2');
  const warn = f.logs.lines().filter((l) => l.code === 'MDA_CONFIG_RESTART_NEEDED');
  assert.equal(warn.length, 1);
  assert.deepEqual(warn[0]!.options, ['metadata_backlog', 'nova_metadata_port']);
  assert.equal(warn[0]!.level, 'warn');
});

test('an invalid new file: one error line, and the running configuration is kept entirely', async (t) => {
  const f = await fixture(t, 'metadata_proxy_shared_secret = keep-me');
  writeFileSync(
    f.conf,
    settings(f.inventoryFile, 'metadata_proxy_shared_secret = never-applied\nnova_metadata_port = eighty'),
  );
  const outcome = await f.reloader.reload();
  assert.equal(outcome.ok, false);
  assert.equal(outcome.error, `${f.conf}:5 [DEFAULT] nova_metadata_port = 'eighty': expected an integer`);
  assert.equal(f.signer.sign(INSTANCE), signInstanceId('keep-me', INSTANCE));
  assert.equal(f.reloader.config.sharedSecret, 'keep-me');
  const errors = f.logs.lines().filter((l) => l.level === 'error');
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.code, 'MDA_CONFIG_RELOAD_FAILED');
  assert.equal(errors[0]!.msg, 'configuration reload failed; the running configuration is kept');
  assert.equal(errors[0]!.error, outcome.error);
  assert.equal(sample(await f.metrics.render(), 'nmp_agent_config_reloads_total', { result: 'failure' }), 1);
});

test('the inventory is re-read; a broken inventory fails the whole reload', async (t) => {
  const f = await fixture(t, 'metadata_proxy_shared_secret = a');
  const q = { mode: 'network' as const, id: NET, ip: '10.0.0.77' };
  await assert.rejects(f.inventory.resolve(q), { code: 'MDA_ERR_PORT_NOT_FOUND' });
  writeFileSync(
    f.inventoryFile,
    JSON.stringify({
      ports: [
        ...PORTS,
        { network_id: NET, fixed_ips: [{ ip_address: '10.0.0.77' }], device_id: 'new-vm', project_id: 'p' },
      ],
    }),
  );
  assert.equal((await f.reloader.reload()).ok, true);
  assert.equal((await f.inventory.resolve(q)).instanceId, 'new-vm');

  writeFileSync(f.inventoryFile, '{"ports": [ broken');
  writeFileSync(f.conf, settings(f.inventoryFile, 'metadata_proxy_shared_secret = b'));
  const outcome = await f.reloader.reload();
  assert.equal(outcome.ok, false);
  assert.match(outcome.error!, /^inventory file .*ports\.json: not valid JSON/);
  assert.equal(
    f.signer.sign(INSTANCE),
    signInstanceId('a', INSTANCE),
    'the secret of a failed reload is not applied',
  );
  assert.equal((await f.inventory.resolve(q)).instanceId, 'new-vm', 'the old inventory still serves');
});

test('signals arriving during a reload are served by one more reload, not lost and not piled up', async (t) => {
  const f = await fixture(t, 'metadata_proxy_shared_secret = a');
  const first = f.reloader.reload();
  writeFileSync(f.conf, settings(f.inventoryFile, 'metadata_proxy_shared_secret = z'));
  const second = f.reloader.reload();
  const third = f.reloader.reload();
  assert.equal(second, third);
  await Promise.all([first, second]);
  assert.equal(f.reloader.config.sharedSecret, 'z');
  assert.equal(f.logs.lines().filter((l) => l.code === 'MDA_CONFIG_RELOADED').length, 2);
});

test('resolver = neutron: the [neutron] credentials apply (and are checked) on reload; otherwise they need a restart', async (t) => {
  const neutron = (password: string, extra = 'user_domain_name = Default') =>
    `metadata_proxy_shared_secret = s\n[neutron]\nauth_url = http://127.0.0.1:5000/v3\nusername = nmp\npassword = ${password}\n${extra}\nproject_name = service\nproject_domain_name = Default`;
  const f = await fixture(t, neutron('old-pw'));
  const told: Array<{ password?: string }> = [];
  const withNeutron = new ConfigReloader(
    () => loadConfig(agentSchema, { flags: { 'config-file': [f.conf] }, env: {}, compat: AGENT_COMPAT }),
    f.reloader.config,
    {
      signer: f.signer,
      logger: f.logs.logger,
      neutron: {
        reloadCredentials: (auth) => {
          told.push(auth);
          return auth.password === 'new-pw' ? 'login' : 'none';
        },
      },
    },
  );
  writeFileSync(f.conf, settings(f.inventoryFile, neutron('new-pw')));
  assert.deepEqual(await withNeutron.reload(), { ok: true, applied: ['password'], restartNeeded: [] });
  assert.equal(told.at(-1)?.password, 'new-pw');
  assert.equal(withNeutron.config.neutronPassword, 'new-pw');
  const line = f.logs.lines().find((l) => l.code === 'MDA_CONFIG_RELOADED');
  assert.equal(line?.keystone, 'login');
  assert.ok(!f.logs.text().includes('new-pw') && !f.logs.text().includes('old-pw'));

  // Incomplete credentials fail the reload as they would fail a start; nothing is applied or told.
  writeFileSync(f.conf, settings(f.inventoryFile, neutron('newer-pw', '')));
  const bad = await withNeutron.reload();
  assert.equal(bad.ok, false);
  assert.match(bad.error!, /\[neutron\] username needs user_domain_name/);
  assert.equal(told.length, 1);
  assert.equal(withNeutron.config.neutronPassword, 'new-pw');

  // Another resolver: a changed password is a restart-only change, as before.
  const outcome = await f.reloader.reload();
  assert.deepEqual(outcome.restartNeeded, ['password', 'user_domain_name']);
});
