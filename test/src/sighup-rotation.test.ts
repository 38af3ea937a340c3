/*
 * Rotating the shared secret with SIGHUP while the agent is under load: the agent CLI reads its secret
 * from a config file, ten keep-alive clients hammer its socket, the file is rewritten and the agent gets
 * SIGHUP. A stand-in Nova records the signature of every request and accepts both secrets. No request may
 * fail, no connection may be dropped, every request sent after the reload was acknowledged must be signed
 * with the new secret, and every one sent before the signal with the old. A broken file on SIGHUP leaves
 * the running configuration in place with one error line.
 */
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { createServer, Agent as HttpAgent, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { signInstanceId } from '@nmp/common';
import { parseLogLines } from '@nmp/testkit';
import {
  CLI,
  SAMPLE_INSTANCE,
  SAMPLE_INVENTORY,
  SAMPLE_NETWORK,
  sleep,
  spawnCli,
  tempDir,
} from './fault-harness.js';

const OLD = 'rotation-old-secret';
const NEW = 'rotation-new-secret';
const OLD_SIG = signInstanceId(OLD, SAMPLE_INSTANCE);
const NEW_SIG = signInstanceId(NEW, SAMPLE_INSTANCE);

interface StandInNova {
  readonly port: number;
  /** Request number (from the query string) -> signature received. */
  readonly signatures: Map<number, string>;
}

/** Answers 200 to a request signed with either secret, 403 otherwise; records every signature. */
async function startStandInNova(t: TestContext): Promise<StandInNova> {
  const signatures = new Map<number, string>();
  const server: Server = createServer((req, res) => {
    const sig = String(req.headers['x-instance-id-signature']);
    const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n'));
    signatures.set(n, sig);
    const ok = sig === OLD_SIG || sig === NEW_SIG;
    const body = ok ? '{"uuid": "ok"}' : 'Invalid proxy request signature.';
    res.writeHead(ok ? 200 : 403, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { port: (server.address() as AddressInfo).port, signatures };
}

function writeConfig(path: string, socket: string, novaPort: number, secretLine: string): void {
  // Written beside and renamed into place, as configuration management does: the agent never reads half a file.
  const text = [
    '[DEFAULT]',
    'resolver = inventory',
    `inventory_file = ${SAMPLE_INVENTORY}`,
    `metadata_proxy_socket = ${socket}`,
    'nova_metadata_host = 127.0.0.1',
    `nova_metadata_port = ${novaPort}`,
    secretLine,
    '',
  ].join('\n');
  writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

interface Sent {
  readonly n: number;
  status: number | string;
}

/** Ten keep-alive clients sending back to back over the agent socket until stopped (or 20 s). */
function startLoad(socketPath: string, first = 1) {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 10, maxFreeSockets: 10 });
  const sockets = new Set<Socket>();
  let socketsClosed = 0;
  const sent: Sent[] = [];
  let next = first;
  let stopping = false;
  const deadline = Date.now() + 20_000;
  const one = (entry: Sent) =>
    new Promise<void>((resolve) => {
      const req = request(
        {
          socketPath,
          agent,
          path: `/openstack/latest/meta_data.json?n=${entry.n}`,
          headers: { 'x-neutron-network-id': SAMPLE_NETWORK, 'x-forwarded-for': '127.0.0.1' },
          timeout: 5000,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            entry.status = res.statusCode ?? 0;
            resolve();
          });
          res.on('error', (err: NodeJS.ErrnoException) => {
            entry.status = err.code ?? 'error';
            resolve();
          });
        },
      );
      req.on('socket', (s: Socket) => {
        if (!sockets.has(s)) {
          sockets.add(s);
          s.once('close', () => {
            if (!stopping) socketsClosed++;
          });
        }
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        entry.status = err.code ?? err.message;
        resolve();
      });
      req.end();
    });
  const worker = async () => {
    while (!stopping && Date.now() < deadline) {
      const entry: Sent = { n: next++, status: 'pending' };
      sent.push(entry);
      await one(entry);
    }
  };
  const workers = Array.from({ length: 10 }, worker);
  return {
    sent,
    /** The number the next request will carry: everything below it has been sent already. */
    nextNumber: () => next,
    sockets,
    socketsClosed: () => socketsClosed,
    async stop() {
      stopping = true;
      await Promise.all(workers);
      agent.destroy();
    },
  };
}

/** Waits (at most 8 s) until the load has sent `n` requests. */
async function sentAtLeast(load: { nextNumber(): number }, n: number): Promise<void> {
  const until = Date.now() + 8000;
  while (load.nextNumber() < n && Date.now() < until) await sleep(50);
}

test('SIGHUP rotates the shared secret under load: no failure, no dropped connection, new signatures after', async (t) => {
  const dir = tempDir(t, 'nmp-sighup-');
  const nova = await startStandInNova(t);
  const conf = join(dir, 'metadata_agent.ini');
  const socket = join(dir, 'metadata_proxy');
  writeConfig(conf, socket, nova.port, `metadata_proxy_shared_secret = ${OLD}`);
  const agent = spawnCli(t, 'agent', CLI.agent, ['--config-file', conf]);
  await agent.waitFor(/metadata-agent listening/);

  const load = startLoad(socket);
  let stopped = false;
  t.after(() => (stopped ? undefined : load.stop()));
  // A second, and at least 100 requests: on a busy machine a second may hold only a few dozen.
  await sleep(1000);
  await sentAtLeast(load, 100);

  writeConfig(conf, socket, nova.port, `metadata_proxy_shared_secret = ${NEW}`);
  const beforeSignal = load.nextNumber();
  agent.child.kill('SIGHUP');
  await agent.waitFor(/"code":"MDA_CONFIG_RELOADED"/, 10_000);
  const afterReload = load.nextNumber();
  await sleep(1000);
  await sentAtLeast(load, afterReload + 100);
  await load.stop();
  stopped = true;

  const failed = load.sent.filter((s) => s.status !== 200);
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${load.sent.length} requests failed`);
  assert.ok(load.sent.length >= 200, `only ${load.sent.length} requests were sent`);
  assert.ok(load.sockets.size <= 10, `${load.sockets.size} connections were opened for 10 clients`);
  assert.equal(load.socketsClosed(), 0, 'no connection may be closed during the load');

  let old = 0;
  let fresh = 0;
  for (const s of load.sent) {
    const sig = nova.signatures.get(s.n);
    assert.ok(sig === OLD_SIG || sig === NEW_SIG, `request ${s.n}: unexpected signature ${sig}`);
    if (s.n < beforeSignal) assert.equal(sig, OLD_SIG, `request ${s.n} was sent before SIGHUP`);
    if (s.n >= afterReload) assert.equal(sig, NEW_SIG, `request ${s.n} was sent after the reload`);
    if (sig === OLD_SIG) old++;
    else fresh++;
  }
  assert.ok(old > 50 && fresh > 50, `old-signed ${old}, new-signed ${fresh}`);

  // The reload line names what changed, never the secret.
  assert.match(agent.output(), /"applied":\["metadata_proxy_shared_secret"\]/);
  assert.ok(!agent.output().includes(OLD) && !agent.output().includes(NEW));
  assert.equal(agent.child.exitCode, null, 'the agent is still running');
});

test('an invalid file on SIGHUP: one error line, the old secret keeps signing, the agent keeps serving', async (t) => {
  const dir = tempDir(t, 'nmp-sighup-');
  const nova = await startStandInNova(t);
  const conf = join(dir, 'metadata_agent.ini');
  const socket = join(dir, 'metadata_proxy');
  writeConfig(conf, socket, nova.port, `metadata_proxy_shared_secret = ${OLD}`);
  const agent = spawnCli(t, 'agent', CLI.agent, ['--config-file', conf]);
  await agent.waitFor(/metadata-agent listening/);

  const load = startLoad(socket);
  let stopped = false;
  t.after(() => (stopped ? undefined : load.stop()));
  await sleep(300);
  writeConfig(conf, socket, nova.port, `metadata_proxy_shared_secret = ${NEW}\nmetadata_backlog = lots`);
  agent.child.kill('SIGHUP');
  await agent.waitFor(/"code":"MDA_CONFIG_RELOAD_FAILED"/, 10_000);
  const afterFailure = load.nextNumber();
  await sleep(500);
  await load.stop();
  stopped = true;

  assert.deepEqual(load.sent.filter((s) => s.status !== 200).slice(0, 5), [], 'every request is answered');
  const late = load.sent.filter((s) => s.n >= afterFailure);
  assert.ok(late.length > 20, `only ${late.length} requests after the failed reload`);
  for (const s of load.sent) assert.equal(nova.signatures.get(s.n), OLD_SIG, `request ${s.n}`);

  const lines = parseLogLines(agent.output());
  const errors = lines.filter((l) => l.level === 'error');
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.equal(errors[0]!.code, 'MDA_CONFIG_RELOAD_FAILED');
  assert.equal(errors[0]!.error, `${conf}:8 [DEFAULT] metadata_backlog = 'lots': expected an integer`);
  assert.equal(lines.filter((l) => l.code === 'MDA_CONFIG_RELOADED').length, 0);

  // Fixed file, second SIGHUP: now the new secret applies.
  writeConfig(conf, socket, nova.port, `metadata_proxy_shared_secret = ${NEW}`);
  agent.child.kill('SIGHUP');
  await agent.waitFor(/"code":"MDA_CONFIG_RELOADED"/, 10_000);
  const probe = startLoad(socket, 1_000_000);
  await sleep(100);
  await probe.stop();
  assert.ok(probe.sent.length > 0);
  for (const s of probe.sent) {
    assert.equal(s.status, 200);
    assert.equal(nova.signatures.get(s.n), NEW_SIG);
  }
});
