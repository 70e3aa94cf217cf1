import { strict as assert } from 'node:assert';
import { jsonSliced } from '../../../../collector/api/respond';

describe('jsonSliced', () => {
  const diff = (i: number): string => `-  principals: [a-${i}]\n+  principals: [b-${i}, "quote\\"d", ünïcode]`;
  const table: Array<[string, unknown]> = [
    ['a policy change answer with many changes', { version: 7, applied: true, dryRun: false, changes: Array.from({ length: 3000 }, (_, i) => ({ op: 'update', kind: 'AuthorizationPolicy', namespace: 'shop', name: `p-${i}`, diff: diff(i) })), warnings: ['w'] }],
    ['a policies frame (as the policy manager encodes it after a sliced commit)', { type: 'policies', version: 12, files: Array.from({ length: 1000 }, (_, i) => ({ source: `api:AuthorizationPolicy/shop/p-${i}`, text: JSON.stringify({ kind: 'AuthorizationPolicy', metadata: { name: `p-${i}` }, spec: { rules: [{ to: [{ operation: { paths: [`/a "${i}"\\`] } }] }] } }) })) }],
    ['fields left out when undefined, lists holding undefined and null', { a: undefined, b: [undefined, null, 1, 'x', { c: undefined }], d: { e: [1] } }],
    ['an empty object and empty lists', { a: [], b: {} }],
    ['not an object', [1, 2, { a: 3 }]],
    ['null', null],
    ['a number', 42],
  ];
  for (const [what, value] of table) {
    it(`${what}: the text JSON.stringify makes`, async () => assert.equal(await jsonSliced(value, 1), JSON.stringify(value)));
  }

  it('takes a string as JSON already (as sendJson does)', async () => assert.equal(await jsonSliced('{"a":1}', 1), '{"a":1}'));

  it('lets the event loop run while it encodes a long list', async () => {
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    const big = { changes: Array.from({ length: 20_000 }, (_, i) => ({ name: `p-${i}`, diff: diff(i).repeat(20) })) };
    const text = await jsonSliced(big, 1);
    clearInterval(timer);
    assert.equal(text, JSON.stringify(big));
    assert.ok(turns > 0, 'timers ran meanwhile');
  });
});
