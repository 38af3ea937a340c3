/*
 * On the wire, next to neutron's own client (python3-neutron's MetadataPluginAPI and
 * PluginReportStateAPI, run by the lab's python process against the same broker): a capture queue bound
 * to the control exchange receives a copy of every call and cast both clients publish, and the test
 * compares them field by field (exchange, routing key, AMQP properties, envelope, message keys, args,
 * version, namespace absent, context keys). The reply queue and the control exchange are compared with
 * what neutron's client and server declared (rabbitmqctl). Replies are accepted in the three shapes oslo
 * servers have sent: one message on the default exchange, the pre-2015 result-then-ending pair, and on a
 * direct exchange named after the reply queue (before 2019), with call-monitor heartbeats ignored.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { captureLogs, sleep, waitUntil } from '@nmp/testkit';
import type * as amqpTypes from 'amqplib';
import { decodeEnvelope, encodeEnvelope } from '../src/rpc/envelope.js';
import { addressFilters } from '../src/rpc/rpc-resolver.js';
import { NET_A, type RpcLab, startRpcLab, VM_A } from './rpc-fixture.js';

const amqp = createRequire(import.meta.url)('amqplib') as typeof amqpTypes;

interface Captured {
  readonly exchange: string;
  readonly routingKey: string;
  readonly properties: amqpTypes.MessageProperties;
  readonly message: Record<string, unknown>;
  readonly raw: Record<string, unknown>;
}

async function capture(lab: RpcLab, keys: readonly string[]) {
  const conn = await amqp.connect(lab.url.replace(/^rabbit:/, 'amqp:'));
  const ch = await conn.createChannel();
  const q = await ch.assertQueue('', { exclusive: true, durable: false });
  for (const k of keys) await ch.bindQueue(q.queue, 'neutron', k);
  const seen: Captured[] = [];
  await ch.consume(
    q.queue,
    (m) => {
      if (!m) return;
      seen.push({
        exchange: m.fields.exchange,
        routingKey: m.fields.routingKey,
        properties: m.properties,
        message: decodeEnvelope(m.content),
        raw: JSON.parse(m.content.toString('utf8')) as Record<string, unknown>,
      });
    },
    { noAck: true },
  );
  return { seen, conn, ch, close: () => conn.close().catch(() => {}) };
}

const keysOf = (o: Record<string, unknown>) => Object.keys(o).sort();

test("our calls and casts look like neutron's on the wire, and every reply style is understood", async (t) => {
  const lab = await startRpcLab(t);
  if (!lab) return;
  const cap = await capture(lab, ['q-plugin', 'q-reports-plugin', 'nmp-old-style']);
  t.after(() => cap.close());
  const { logger } = captureLogs();
  const rpc = lab.parts(t, logger, ['[AGENT]', 'report_interval = 1', '[DEFAULT]', 'host = compute-7']);
  let ourReplyQ = '';
  let theirReplyQ = '';

  await t.test('get_ports: same exchange, key, properties, envelope and message as neutron', async () => {
    const filters = addressFilters({ mode: 'network', id: NET_A, ip: VM_A.ip }, [NET_A]);
    await lab.server.command({ cmd: 'neutron_get_ports', filters });
    await rpc.resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip });
    await waitUntil(
      () => cap.seen.filter((c) => c.message.method === 'get_ports').length >= 2,
      5000,
      'two captured calls',
    );
    const [theirs, ours] = cap.seen.filter((c) => c.message.method === 'get_ports') as [Captured, Captured];
    assert.equal(ours.exchange, theirs.exchange);
    assert.equal(ours.exchange, 'neutron');
    assert.equal(ours.routingKey, 'q-plugin');
    assert.equal(ours.routingKey, theirs.routingKey);
    for (const p of ['contentType', 'contentEncoding', 'deliveryMode', 'priority'] as const)
      assert.deepEqual(ours.properties[p], theirs.properties[p], `property ${p}`);
    assert.deepEqual(ours.properties.headers ?? {}, theirs.properties.headers ?? {});
    // A call expires when its caller stops waiting: neutron after rpc_response_timeout, we at our deadline.
    assert.match(String(theirs.properties.expiration), /^\d+$/);
    assert.match(String(ours.properties.expiration), /^\d+$/);
    assert.ok(Number(ours.properties.expiration) <= 5000);
    assert.deepEqual(keysOf(ours.raw), keysOf(theirs.raw));
    assert.equal(ours.raw['oslo.version'], '2.0');
    // Every key neutron sends, we send; the only one we add is newer neutron_lib's has_global_access.
    const extra = keysOf(ours.message).filter((k) => !(k in theirs.message));
    const missing = keysOf(theirs.message).filter((k) => !(k in ours.message));
    assert.deepEqual(missing, []);
    assert.deepEqual(extra, ['_context_has_global_access']);
    assert.ok(!('namespace' in ours.message) && !('namespace' in theirs.message));
    for (const k of ['method', 'version', 'args', '_timeout', '_context_is_admin', '_context_user_identity'])
      assert.deepEqual(ours.message[k], theirs.message[k], k);
    assert.match(String(ours.message._reply_q), /^reply_[0-9a-f]{32}$/);
    ourReplyQ = String(ours.message._reply_q);
    theirReplyQ = String(theirs.message._reply_q);
    assert.match(String(ours.message._msg_id), /^[0-9a-f]{32}$/);
    assert.match(String(ours.message._unique_id), /^[0-9a-f]{32}$/);
    assert.match(String(ours.message._context_timestamp), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    // Same value types in the context (null stays null, lists stay lists).
    for (const k of keysOf(theirs.message).filter((x) => x.startsWith('_context_')))
      assert.equal(typeof ours.message[k], typeof theirs.message[k], k);
  });

  await t.test('reply queue and exchange declared as neutron declares them', async () => {
    const queues = await lab.rabbit.ctl([
      'list_queues',
      '-q',
      '--no-table-headers',
      'name',
      'durable',
      'auto_delete',
      'exclusive',
      'arguments',
    ]);
    const replies = queues
      .split('\n')
      .filter((l) => l.startsWith('reply_'))
      .map((l) => l.split('\t'));
    const ours = replies.find((r) => r[0] === ourReplyQ);
    assert.ok(ours, `our reply queue in ${queues}`);
    const theirs = replies.find((r) => r[0] === theirReplyQ);
    assert.ok(theirs, 'neutron client reply queue');
    assert.deepEqual(ours.slice(1), theirs.slice(1));
    assert.deepEqual(ours.slice(1, 4), ['false', 'false', 'false']);
    assert.match(ours[4]!, /x-expires.*1800000/);
    // We log in as the transport_url's user (not as guest), with our connection name.
    const conns = await lab.rabbit.ctl([
      'list_connections',
      '-q',
      '--no-table-headers',
      'user',
      'client_properties',
    ]);
    const mine = conns.split('\n').filter((l) => l.includes('metadata-agent:'));
    assert.equal(mine.length, 1, conns);
    assert.match(mine[0]!, /^nmp-agent\t/);
    const exchanges = await lab.rabbit.ctl([
      'list_exchanges',
      '-q',
      '--no-table-headers',
      'name',
      'type',
      'durable',
      'auto_delete',
    ]);
    assert.match(exchanges, /^neutron\ttopic\tfalse\tfalse$/m);
    // The direct exchange named after our reply queue (for servers before 2019).
    assert.match(exchanges, new RegExp(`^${ours[0]}\\tdirect\\tfalse\\ttrue$`, 'm'));
  });

  await t.test(
    'report_state: call with start_flag first, then casts, shaped as neutron reports',
    async () => {
      rpc.reporter!.start();
      await waitUntil(
        () => cap.seen.filter((c) => c.message.method === 'report_state').length >= 2,
        10_000,
        'two reports',
      );
      await lab.server.command({
        cmd: 'neutron_report',
        use_call: false,
        state: {
          binary: 'neutron-metadata-agent',
          host: 'x',
          topic: 'N/A',
          configurations: {},
          agent_type: 'Metadata agent',
        },
      });
      await waitUntil(
        () => cap.seen.filter((c) => c.message.method === 'report_state').length >= 3,
        10_000,
        'neutron report',
      );
      const reports = cap.seen.filter((c) => c.message.method === 'report_state');
      const [first, second] = reports as [Captured, Captured];
      const theirs = reports.find(
        (r) =>
          (r.message.args as { agent_state: { agent_state: { host: string } } }).agent_state.agent_state
            .host === 'x',
      )!;
      assert.equal(first.routingKey, 'q-reports-plugin');
      assert.equal(first.message.version, '1.2');
      assert.equal(first.message.version, theirs.message.version);
      assert.ok(!('namespace' in first.message));
      // The first is a call (reply queue, msg id), the next a cast, like neutron's cast: no call fields.
      assert.match(String(first.message._msg_id), /^[0-9a-f]{32}$/);
      assert.ok(!('_msg_id' in second.message) && !('_reply_q' in second.message));
      assert.deepEqual(
        keysOf(second.message).filter((k) => !k.startsWith('_context_')),
        keysOf(theirs.message).filter((k) => !k.startsWith('_context_')),
      );
      assert.equal(second.properties.expiration, undefined);
      assert.equal(theirs.properties.expiration, undefined);
      for (const p of ['contentType', 'contentEncoding', 'deliveryMode', 'priority'] as const)
        assert.deepEqual(second.properties[p], theirs.properties[p], `property ${p}`);
      const s1 = (first.message.args as { agent_state: { agent_state: Record<string, unknown> } }).agent_state
        .agent_state;
      const s2 = (second.message.args as { agent_state: { agent_state: Record<string, unknown> } })
        .agent_state.agent_state;
      assert.equal(s1.start_flag, true);
      assert.equal(s2.start_flag, undefined);
      assert.deepEqual(keysOf(theirs.message.args as Record<string, unknown>), ['agent_state', 'time']);
      assert.deepEqual(keysOf(first.message.args as Record<string, unknown>), ['agent_state', 'time']);
      assert.match(
        String((first.message.args as { time: string }).time),
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/,
      );
      rpc.reporter!.stop();
    },
  );

  await t.test(
    'replies: default exchange, pre-2015 result then ending, pre-2019 direct exchange',
    async () => {
      const ch = cap.ch;
      const q = await ch.assertQueue('nmp-old-style-q', { durable: false, autoDelete: true });
      await ch.bindQueue(q.queue, 'neutron', 'nmp-old-style');
      let style = 0;
      await ch.consume(
        q.queue,
        (m) => {
          if (!m) return;
          const msg = decodeEnvelope(m.content);
          const replyQ = String(msg._reply_q);
          const msgId = String(msg._msg_id);
          const send = (exchange: string, body: Record<string, unknown>) =>
            ch.publish(
              exchange,
              replyQ,
              encodeEnvelope({ ...body, _msg_id: msgId, _unique_id: `u${Math.random()}` }),
            );
          const s = style++;
          if (s === 0) {
            send('', { result: { style: 'current' }, failure: null, ending: true });
          } else if (s === 1) {
            send('', { result: null, failure: null, ending: false }); // call-monitor heartbeat
            send('', { result: { style: 'old two-part' }, failure: null });
            send('', { result: null, failure: null, ending: true });
          } else {
            send(replyQ, { result: { style: 'direct exchange' }, failure: null, ending: true });
          }
        },
        { noAck: true },
      );
      const call = () =>
        rpc.client.call('nmp-old-style', { method: 'ping', args: {}, version: '1.0' }, Date.now() + 5000);
      assert.deepEqual(await call(), { style: 'current' });
      assert.deepEqual(await call(), { style: 'old two-part' });
      assert.deepEqual(await call(), { style: 'direct exchange' });
      await sleep(50);
    },
  );

  await t.test(
    'a control exchange declared with other flags is used as it is, with one warning',
    async () => {
      const conn = await amqp.connect(lab.url.replace(/^rabbit:/, 'amqp:'));
      t.after(() => conn.close().catch(() => {}));
      const ch = await conn.createChannel();
      await ch.assertExchange('nmp-durable', 'topic', { durable: true, autoDelete: false });
      await ch.assertQueue('q-plugin-durable-test', { durable: false, autoDelete: true });
      await ch.bindQueue('q-plugin-durable-test', 'nmp-durable', 'q-plugin');
      const { logger, lines } = captureLogs();
      const rpc = lab.parts(t, logger, [
        '[DEFAULT]',
        'control_exchange = nmp-durable',
        'rpc_lookup_timeout = 1',
      ]);
      await waitUntil(() => rpc.broker.connected, 20_000, 'connection');
      const warns = lines().filter((l) => l.code === 'MDA_RPC_EXCHANGE_MISMATCH');
      assert.equal(warns.length, 1);
      assert.match(String(warns[0]!.msg), /amqp_durable_queues/);
      // Publishing works on it: the call waits in the queue bound there (nobody answers: the deadline ends
      // the call, and the broker then drops the request, whose expiration is the deadline).
      const pending = rpc.resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip });
      let got: amqpTypes.GetMessage | false = false;
      for (let i = 0; i < 20 && !got; i++) {
        await sleep(25);
        got = await ch.get('q-plugin-durable-test', { noAck: true });
      }
      assert.ok(got, 'the call reached the queue bound to the durable exchange');
      await assert.rejects(pending, { code: 'MDA_ERR_RPC_TIMEOUT' });
      // With the flag neutron-server uses there, no warning at all.
      const second = captureLogs();
      const aligned = lab.parts(t, second.logger, [
        '[DEFAULT]',
        'control_exchange = nmp-durable',
        '[oslo_messaging_rabbit]',
        'amqp_durable_queues = true',
      ]);
      await waitUntil(() => aligned.broker.connected, 20_000, 'connection');
      assert.equal(second.lines().filter((l) => l.code === 'MDA_RPC_EXCHANGE_MISMATCH').length, 0);
    },
  );

  await t.test('a topic no neutron-server consumes fails at once, not at the deadline', async () => {
    const { logger } = captureLogs();
    // No server on this control exchange: nothing is bound to q-plugin there.
    const rpc = lab.parts(t, logger, [
      '[DEFAULT]',
      'rpc_lookup_timeout = 10',
      'control_exchange = nmp-nobody',
    ]);
    await waitUntil(() => rpc.broker.connected, 20_000, 'connection');
    const started = Date.now();
    await assert.rejects(
      rpc.resolver.resolve({ mode: 'network', id: NET_A, ip: VM_A.ip }),
      (err: Error & { code?: string; details?: { reason?: string } }) => {
        assert.equal(err.code, 'MDA_ERR_RPC_UNAVAILABLE');
        assert.match(String(err.details?.reason), /no queue is bound to q-plugin on exchange nmp-nobody/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });
});
