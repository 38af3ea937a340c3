/*
 * Stock files, as an operator swaps the agent in: neutron.conf and metadata_agent.ini exactly as kolla,
 * devstack and Debian's packages write them (test/fixtures, with this lab's broker, Nova and paths), given
 * as neutron's own unit gives them (`--config-file neutron.conf --config-file metadata_agent.ini`, Debian
 * with `=` and --log-file). The agent starts with resolver = rpc chosen by itself, lists the options it
 * does not use in one line and warns about none, registers with neutron-server (a report_state call with
 * start_flag, received by neutron's own AgentExtRpcCallback), answers an instance through RPC, and never
 * writes the broker password: not in its log, not in --print-config, which names the resolver and the
 * transport with the password masked.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { signInstanceId } from '@nmp/common';
import { startNeutronRpcServer } from '@nmp/testkit';
import { startStubNova, tempDir } from './helpers.js';
import { AGENT_CLI, type Flavour, startAgentCli, writeStockFiles } from './rpc-agent.js';
import { LAB_PORTS, NET_A, RPC_PASSWORD, RPC_USER, startRpcLab, VM_A } from './rpc-fixture.js';

const SECRET = 'stock-files-secret';

test('stock neutron.conf + metadata_agent.ini (kolla, devstack, Debian) work unchanged', async (t) => {
  const lab = await startRpcLab(t);
  if (!lab) return;
  // kolla runs neutron-server with rabbit_quorum_queue = true: its exchange is durable. Its own vhost,
  // with a neutron-server configured the same way.
  await lab.rabbit.addVhost('kolla');
  await lab.rabbit.ctl(['set_permissions', '-p', 'kolla', RPC_USER, '.*', '.*', '.*']);
  const kollaUrl = lab.rabbit.url(RPC_USER, RPC_PASSWORD, 'kolla');
  const kollaServer = await startNeutronRpcServer(t, {
    transportUrl: kollaUrl,
    durable: true,
    ports: LAB_PORTS,
  });
  const nova = await startStubNova(t);

  for (const flavour of ['kolla', 'devstack', 'debian'] as Flavour[]) {
    await t.test(flavour, async (t2) => {
      const server = flavour === 'kolla' ? kollaServer : lab.server;
      const dir = tempDir(t2);
      const [conf, ini] = writeStockFiles(dir, flavour, {
        transportUrl: flavour === 'kolla' ? kollaUrl : lab.url,
        statePath: dir,
        novaHost: '127.0.0.1',
        novaPort: nova.port,
        secret: SECRET,
        host: `${flavour}-net-1`,
      });
      const logFile = join(dir, 'neutron-metadata-agent.log');
      const args =
        flavour === 'debian'
          ? [`--config-file=${conf}`, `--config-file=${ini}`, `--log-file=${logFile}`]
          : ['--config-file', conf, '--config-file', ini];

      const printed = spawnSync(process.execPath, [AGENT_CLI, ...args, '--print-config'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(printed.status, 0, printed.stderr);
      assert.match(printed.stdout, /^# resolver: rpc \(transport_url is set\)$/m);
      assert.match(
        printed.stdout,
        /^# transport: rabbit:\/\/nmp-agent:\*\*\*\*@127\.0\.0\.1:\d+\/(kolla)?, exchange neutron, reports every 30 s$/m,
      );
      assert.match(
        printed.stdout,
        /^transport_url = \*\*\*\* {4}# .*neutron\.conf:\d+ \[DEFAULT\] transport_url$/m,
      );
      for (const s of [RPC_PASSWORD, encodeURIComponent(RPC_PASSWORD)])
        assert.ok(!printed.stdout.includes(s) && !printed.stderr.includes(s), 'password printed');

      const started = Date.now() / 1000;
      const agent = await startAgentCli(
        t2,
        args,
        join(dir, 'metadata_proxy'),
        {},
        true,
        flavour === 'debian' ? logFile : undefined,
      );
      const listening = agent.lines().find((l) => l.msg === 'metadata-agent listening')!;
      assert.equal(listening.resolver, 'rpc');
      assert.match(String(listening.transport), /^rabbit:\/\/nmp-agent:\*\*\*\*@127\.0\.0\.1:\d+\//);
      // Unused options: one line, and not one warning about the files.
      const ignored = agent.lines().filter((l) => l.code === 'MDA_CONFIG_IGNORED');
      assert.equal(ignored.length, 1);
      assert.ok((ignored[0]!.options as string[]).some((o) => /\[database\] connection/.test(o)));
      assert.ok((ignored[0]!.options as string[]).some((o) => /\[keystone_authtoken\] password/.test(o)));
      const warnings = agent.lines().filter((l) => l.code === 'MDA_CONFIG_WARNING');
      assert.deepEqual(
        warnings.map((w) => w.msg),
        [],
      );
      assert.equal(agent.lines().filter((l) => l.code === 'MDA_RPC_EXCHANGE_MISMATCH').length, 0);

      // Registered with neutron-server: a report_state with start_flag for this host.
      const host = flavour === 'kolla' ? 'kolla-net-1' : hostname();
      const report = (await withLog(
        agent.text,
        server.waitFor(
          (e) =>
            e.event === 'report_state' &&
            (e.agent_state as { host?: string }).host === host &&
            (e.t as number) >= started - 1,
          20_000,
        ),
      )) as unknown as { agent_state: Record<string, unknown> };
      assert.equal(report.agent_state.start_flag, true);
      assert.equal(report.agent_state.agent_type, 'Metadata agent');
      assert.equal(report.agent_state.binary, 'neutron-metadata-agent');

      // An instance gets its metadata through RPC.
      nova.seen.length = 0;
      const res = await agent.get({ 'x-forwarded-for': VM_A.ip, 'x-neutron-network-id': NET_A });
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(nova.seen[0]!.headers['x-instance-id'], VM_A.uuid);
      assert.equal(nova.seen[0]!.headers['x-instance-id-signature'], signInstanceId(SECRET, VM_A.uuid));

      // Not in argv, not in the process title (the URL came from the file).
      const cmdline = readFileSync(`/proc/${agent.child.pid}/cmdline`, 'utf8');
      const title = readFileSync(`/proc/${agent.child.pid}/comm`, 'utf8');
      for (const s of [RPC_PASSWORD, encodeURIComponent(RPC_PASSWORD)])
        assert.ok(!cmdline.includes(s) && !title.includes(s), 'the broker password is in argv or the title');

      await agent.stop();
      for (const s of [RPC_PASSWORD, encodeURIComponent(RPC_PASSWORD)])
        assert.ok(!agent.text().includes(s), 'the broker password is in the log');
    });
  }
});

/** `p`, with the agent's log added to its failure. */
async function withLog<T>(log: () => string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- agent ---\n${log().slice(-6000)}`;
    throw err;
  }
}
