/*
 * Work for an instance that has gone (issue 21 item 4), on real sockets: a request whose client closed
 * its connection before the proxy got to it is not forwarded to the agent (MDP_ERR_CLIENT_GONE, logged
 * and counted in nmp_proxy_client_gone_total); one whose client leaves while the agent holds it has its
 * agent connection cut at once; a client that stays is served as before.
 *
 * "Before the proxy got to it" is what a boot storm makes: the request and the client's close (cloud-init
 * past its timeout) wait in the socket buffer together while the proxy is busy. The test makes exactly
 * that by running the client with spawnSync: the proxy's event loop (in this process) is blocked while
 * a child process connects, sends a request and closes, so the proxy reads all of it at once.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { test } from 'node:test';
import { parseBind } from '@nmp/common';
import { promSample, until } from '@nmp/testkit';
import { ProxyMetrics } from '../src/metrics.js';
import { MetadataProxy } from '../src/proxy.js';
import { captureLogs, startFakeAgent } from './helpers.js';

async function setup(t: import('node:test').TestContext) {
  const agent = await startFakeAgent(t);
  const logs = captureLogs('ns-metadata-proxy');
  const metrics = new ProxyMetrics();
  const proxy = new MetadataProxy({
    identity: { mode: 'network', id: 'net-1' },
    binds: [parseBind('127.0.0.1:0')],
    socketPath: agent.socketPath,
    logger: logs.logger,
    metrics,
  });
  const [address] = await proxy.listen();
  t.after(() => proxy.close(100));
  return { agent, logs, metrics, port: address!.port };
}

/** While this process is blocked: connect, send `requests` GETs on their own connections, close them. */
function sendAndLeave(port: number, requests: number): void {
  const script = `
    const net = require('node:net');
    let left = ${requests};
    for (let i = 0; i < ${requests}; i++) {
      const s = net.connect(${port}, '127.0.0.1', () => {
        s.write('GET /latest/meta-data/instance-id HTTP/1.1\\r\\nHost: 169.254.169.254\\r\\n\\r\\n');
        s.end();
      });
      s.on('close', () => { if (--left === 0) process.exit(0); });
      s.on('data', () => {});
      s.on('error', () => {});
    }
    setTimeout(() => process.exit(0), 200);`;
  const child = spawnSync(process.execPath, ['-e', script], { timeout: 10_000 });
  assert.equal(child.status, 0, String(child.stderr));
}

const goneLines = (logs: ReturnType<typeof captureLogs>) =>
  logs.lines().filter((l) => l.msg === 'request' && l.code === 'MDP_ERR_CLIENT_GONE');

test('requests whose client closed before the proxy read them are not forwarded; logged and counted', async (t) => {
  const { agent, logs, metrics, port } = await setup(t);
  sendAndLeave(port, 3);
  await until('three log lines', () => goneLines(logs).length === 3);
  // Give a forwarded request (the bug) time to reach the agent.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(agent.started(), 0, 'the agent was asked for a request nobody waits for');
  const line = goneLines(logs)[0]!;
  assert.equal(line.level, 'info');
  assert.equal(line.path, '/latest/meta-data/instance-id');
  assert.equal(promSample(await metrics.render(), 'nmp_proxy_client_gone_total'), 3);
  // Not a refusal of ours.
  assert.equal(promSample(await metrics.render(), 'nmp_proxy_refused_total', { reason: 'bad_request' }), 0);
});

test('a client that stays is served; one that leaves while the agent holds its request has it cut', async (t) => {
  const { agent, logs, metrics, port } = await setup(t);
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/latest/meta-data/' }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  assert.equal(await get(), 200);
  assert.equal(agent.seen.length, 1);

  // The agent holds the next request; its client gives up.
  let agentSide: import('node:http').IncomingMessage | undefined;
  agent.respond = (req) => {
    agentSide = req;
  };
  const client = request({ host: '127.0.0.1', port, path: '/latest/meta-data/hostname' });
  client.on('error', () => {});
  client.end();
  await until('the agent to hold the request', () => agentSide !== undefined);
  const cut = new Promise<void>((resolve) => agentSide!.socket.once('close', () => resolve()));
  client.destroy();
  await cut; // the proxy closed its agent connection: the agent can drop the work
  await until('the log line', () => logs.lines().some((l) => l.code === 'client_closed'));
  assert.equal(promSample(await metrics.render(), 'nmp_proxy_client_gone_total'), 0);
});
