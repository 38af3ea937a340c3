/*
 * Session tokens: bound to source address, network/router and expiry by a MAC under the node key, with no
 * store; forgeries, replays from another address or proxy, and expired tokens are told apart; the node
 * key file is created once (0600) and shared by proxies that start together.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@nmp/testkit';
import {
  generateNodeKey,
  loadNodeKey,
  NODE_KEY_BYTES,
  NodeKeyError,
  SessionTokens,
  TOKEN_TTL_MAX,
  type TokenBinding,
} from '../src/ssrf/session-token.js';

const A: TokenBinding = { source: '10.0.0.5', mode: 'network', id: 'net-1' };

function clock(start = 1_700_000_000_000) {
  const c = { now: start };
  return { c, now: () => c.now };
}

test('a token verifies for its binding until its expiry, then is expired', () => {
  const { c, now } = clock();
  const tokens = new SessionTokens(generateNodeKey(), now);
  const token = tokens.issue(A, 60);
  assert.match(token, /^[A-Za-z0-9_-]{55}$/);
  assert.equal(tokens.verify(token, A), 'valid');
  c.now += 59_999;
  assert.equal(tokens.verify(token, A), 'valid');
  c.now += 1;
  assert.equal(tokens.verify(token, A), 'expired');
  c.now += 3_600_000;
  assert.equal(tokens.verify(token, A), 'expired');
});

test('the same token is invalid for another source, mode or id', () => {
  const { now } = clock();
  const tokens = new SessionTokens(generateNodeKey(), now);
  const token = tokens.issue(A, 600);
  assert.equal(tokens.verify(token, { ...A, source: '10.0.0.6' }), 'invalid');
  assert.equal(tokens.verify(token, { ...A, mode: 'router' }), 'invalid');
  assert.equal(tokens.verify(token, { ...A, id: 'net-2' }), 'invalid');
  // Field boundaries are part of the MAC input: moving a character from one field to the next fails.
  const b: TokenBinding = { source: '10.0.0.5', mode: 'network', id: 'net-1x' };
  const t2 = tokens.issue(b, 600);
  assert.equal(tokens.verify(t2, { source: '10.0.0.5n', mode: 'network', id: 'et-1x' }), 'invalid');
});

test('a token of another node key is invalid, and two proxies with one key accept each other', () => {
  const { now } = clock();
  const key = generateNodeKey();
  const mine = new SessionTokens(key, now).issue(A, 600);
  assert.equal(new SessionTokens(generateNodeKey(), now).verify(mine, A), 'invalid');
  assert.equal(new SessionTokens(Buffer.from(key), now).verify(mine, A), 'valid');
});

test('forged and malformed tokens are invalid, never expired', () => {
  const { c, now } = clock();
  const tokens = new SessionTokens(generateNodeKey(), now);
  const token = tokens.issue(A, 1);
  c.now += 5000; // the genuine token has expired; changed copies must still say invalid
  assert.equal(tokens.verify(token, A), 'expired');
  const raw = Buffer.from(token, 'base64url');
  for (const i of [0, 1, 8, 9, 40]) {
    const bad = Buffer.from(raw);
    bad[i]! ^= 1;
    assert.equal(tokens.verify(bad.toString('base64url'), A), 'invalid', `byte ${i} flipped`);
  }
  // Extending the expiry without the key breaks the MAC.
  const later = Buffer.from(raw);
  later.writeBigUInt64BE(BigInt(c.now + 600_000), 1);
  assert.equal(tokens.verify(later.toString('base64url'), A), 'invalid');
  for (const s of [
    '',
    'x',
    `${token}A`,
    token.slice(1),
    `${token.slice(0, -1)}=`,
    `${token.slice(0, 54)}+`,
    ' '.repeat(55),
  ])
    assert.equal(tokens.verify(s, A), 'invalid', JSON.stringify(s));
});

test('only the canonical spelling verifies: the unused low bits of the last character are not ignored', () => {
  const tokens = new SessionTokens(generateNodeKey());
  // Several tokens, so that last characters with unused bits set and clear both come up.
  for (let n = 0; n < 16; n++) {
    const token = tokens.issue({ ...A, id: `net-${n}` }, 60);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const valid = [...alphabet].filter(
      (ch) => tokens.verify(`${token.slice(0, -1)}${ch}`, { ...A, id: `net-${n}` }) === 'valid',
    );
    assert.deepEqual(valid, [token.at(-1)]);
  }
});

test('a token expiring further ahead than the largest TTL (the clock went back) is invalid', () => {
  const { c, now } = clock();
  const tokens = new SessionTokens(generateNodeKey(), now);
  const token = tokens.issue(A, TOKEN_TTL_MAX);
  assert.equal(tokens.verify(token, A), 'valid');
  c.now -= 3_600_000;
  assert.equal(tokens.verify(token, A), 'invalid');
});

test('the node key must have 32 bytes', () => {
  assert.throws(() => new SessionTokens(Buffer.alloc(NODE_KEY_BYTES - 1)), RangeError);
  assert.equal(generateNodeKey().length, NODE_KEY_BYTES);
  assert.notDeepEqual(generateNodeKey(), generateNodeKey());
});

test('loadNodeKey creates a 0600 hex key file once; later loads read the same key', (t) => {
  const path = join(tempDir(t, 'nmp-token-'), 'token.key');
  const first = loadNodeKey(path);
  assert.equal(first.created, true);
  assert.equal(first.key.length, NODE_KEY_BYTES);
  assert.deepEqual(first.warnings, []);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.match(readFileSync(path, 'utf8'), /^[0-9a-f]{64}\n$/);
  const second = loadNodeKey(path);
  assert.equal(second.created, false);
  assert.deepEqual(second.key, first.key);
  // Tokens from a proxy using the first load verify at a proxy using the second.
  const token = new SessionTokens(first.key).issue(A, 60);
  assert.equal(new SessionTokens(second.key).verify(token, A), 'valid');
});

test('loadNodeKey: concurrent creators agree on one key and no temporary file is left', async (t) => {
  const dir = tempDir(t, 'nmp-token-');
  const path = join(dir, 'token.key');
  // Separate processes race for the file, as proxies starting together on a node do.
  const { spawn } = await import('node:child_process');
  const module = new URL('../src/ssrf/session-token.js', import.meta.url).href;
  const script = `import(${JSON.stringify(module)}).then((m) => process.stdout.write(m.loadNodeKey(${JSON.stringify(path)}).key.toString('hex')))`;
  const outputs = await Promise.all(
    Array.from(
      { length: 4 },
      () =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          child.stdout.on('data', (d: Buffer) => {
            out += d;
          });
          const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
          child.on('error', reject);
          child.on('close', (code) => {
            clearTimeout(timer);
            if (code === 0) resolve(out);
            else reject(new Error(`exit ${code}`));
          });
        }),
    ),
  );
  assert.equal(new Set(outputs).size, 1);
  assert.equal(outputs[0], readFileSync(path, 'utf8').trim());
  const { readdirSync } = await import('node:fs');
  assert.deepEqual(readdirSync(dir), ['token.key']);
});

test('loadNodeKey accepts raw bytes, warns about a readable file, refuses a short key', (t) => {
  const dir = tempDir(t, 'nmp-token-');
  const raw = join(dir, 'raw.key');
  const bytes = Buffer.alloc(40, 7);
  writeFileSync(raw, bytes, { mode: 0o644 });
  const loaded = loadNodeKey(raw);
  assert.deepEqual(loaded.key, bytes);
  assert.equal(loaded.warnings.length, 1);
  assert.match(loaded.warnings[0]!, /readable by others \(mode 644\)/);

  const short = join(dir, 'short.key');
  writeFileSync(short, 'abcd\n', { mode: 0o600 });
  assert.throws(() => loadNodeKey(short), NodeKeyError);
  assert.throws(() => loadNodeKey(join(dir, 'missing-dir', 'k')), /token key file .*ENOENT/);
});
