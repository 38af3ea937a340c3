/*
 * Session-token headers are the guest's business with the proxy: X-aws-ec2-metadata-token and
 * X-aws-ec2-metadata-token-ttl-seconds never reach the agent (nor, through it, Nova), in any case, any
 * count, whatever the token mode.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBind } from '@nmp/common';
import { TOKEN_HEADERS } from '../src/header-names.js';
import { agentRequestHeaders } from '../src/header-policy.js';
import { MetadataProxy } from '../src/proxy.js';
import { SsrfPolicy } from '../src/ssrf/policy.js';
import { generateNodeKey, SessionTokens } from '../src/ssrf/session-token.js';
import { captureLogs, rawRequest, startFakeAgent } from './helpers.js';

test('agentRequestHeaders drops both token headers in any case', () => {
  const out = agentRequestHeaders(
    [
      'Host',
      'x',
      'X-aws-ec2-metadata-token',
      'a',
      'X-AWS-EC2-METADATA-TOKEN',
      'b',
      'x-aws-ec2-metadata-token-ttl-seconds',
      '60',
      'Accept',
      '*/*',
    ],
    { mode: 'network', id: 'net-1' },
    '10.0.0.5',
    'req-1',
  );
  const names = out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  for (const n of TOKEN_HEADERS) assert.ok(!names.includes(n), `${n} reached the agent`);
  assert.ok(names.includes('accept'));
});

test('with tokens required, the agent sees the request but not the token', async (t) => {
  const agent = await startFakeAgent(t);
  const logs = captureLogs();
  const policy = new SsrfPolicy({
    settings: {
      tokenMode: 'required',
      tokenMaxTtl: 21600,
      tokenKeyFile: '',
      requiredHeader: undefined,
      refuseForwardedFor: false,
      pathAllow: [],
      pathDeny: [],
    },
    tokens: new SessionTokens(generateNodeKey()),
  });
  // A variable, not a literal: `ssrf` is the option the wiring adds to MetadataProxyOptions.
  const options = {
    identity: { mode: 'network' as const, id: 'net-1' },
    binds: [parseBind('127.0.0.1:0')],
    socketPath: agent.socketPath,
    logger: logs.logger,
    ssrf: policy,
  };
  const proxy = new MetadataProxy(options);
  const [address] = await proxy.listen();
  t.after(() => proxy.close(100));
  const port = address!.port;

  const put = await rawRequest(
    port,
    'PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nConnection: close\r\n\r\n',
  );
  assert.equal(put.status, 200);
  assert.equal(agent.started(), 0, 'the token request is answered by the proxy');
  const token = put.body.toString();
  const get = await rawRequest(
    port,
    `GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nx-aws-ec2-metadata-token: ${token}\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 5\r\nConnection: close\r\n\r\n`,
  );
  assert.equal(get.status, 200);
  assert.equal(agent.seen.length, 1);
  const seen = agent.seen[0]!;
  for (let i = 0; i < seen.rawHeaders.length; i += 2) {
    assert.ok(
      !TOKEN_HEADERS.has(seen.rawHeaders[i]!.toLowerCase()),
      `${seen.rawHeaders[i]} reached the agent`,
    );
    assert.notEqual(seen.rawHeaders[i + 1], token);
  }
});
