/* The signature vectors of reference.md §12.1, and Nova's rejection rules. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signInstanceId, verifyInstanceSignature } from '../src/signature.js';

const VECTORS: Array<[string, string, string]> = [
  [
    's3cr3t',
    '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10',
    '2492ca1406ea720022b5dbc635e1e405a75b5345ad8100f885053b793ba9f99f',
  ],
  [
    '',
    '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10',
    '7cb7a84d9ab2e161031bfac7f8a6e1ecac75b5dc4ae0109c1bbce41619f29d93',
  ],
  [
    'secret',
    '00000000-0000-0000-0000-000000000000',
    '087ba611beddb623bfa7ea25494b5faeee1c311cf73220413cc3f65056a69332',
  ],
  [
    'metadata-secret',
    'a0e1b6f8-5c2d-4e3f-8a9b-1c2d3e4f5a6b',
    'd5e28220c7cdd0e897c40f1867b00b6b4f0e219ea6816f1c24c0eb36a537d771',
  ],
  [
    'pässwörd',
    '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10',
    '08a5a665d66ea4530fa0e5c6324ea3a98040c553a9cb185050f560e02e7f9203',
  ],
  ['s3cr3t', '', '3c81cc9496e1c25250f6ccb85f697c1bb623e3480d6538ad8cb6a6648142777d'],
  [
    's3cr3t',
    '6F4C1A52-8A4B-4B7E-9E0B-2F6D1C3A9B10',
    '8626079f47d16baee756a2cd08d19822ce557df8bd58373c18edd79200727615',
  ],
];

for (const [secret, id, expected] of VECTORS) {
  test(`signature of ${JSON.stringify(id)} with ${JSON.stringify(secret)}`, () => {
    assert.equal(signInstanceId(secret, id), expected);
    assert.equal(verifyInstanceSignature(secret, id, expected), true);
  });
}

test('a different signature of the right length is rejected', () => {
  const good = signInstanceId('s3cr3t', 'abc');
  const bad = (good[0] === '0' ? '1' : '0') + good.slice(1);
  assert.equal(verifyInstanceSignature('s3cr3t', 'abc', bad), false);
});

test('an empty signature is rejected', () => {
  assert.equal(verifyInstanceSignature('s3cr3t', 'abc', ''), false);
});

test('the signature of another case of the id is rejected', () => {
  const id = '6f4c1a52-8a4b-4b7e-9e0b-2f6d1c3a9b10';
  assert.equal(verifyInstanceSignature('s3cr3t', id, signInstanceId('s3cr3t', id.toUpperCase())), false);
});

test('uppercase hex is not the lowercase signature', () => {
  const id = 'abc';
  assert.equal(verifyInstanceSignature('s3cr3t', id, signInstanceId('s3cr3t', id).toUpperCase()), false);
});
