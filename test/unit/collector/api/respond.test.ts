import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { bytesSliced, jsonSliced, sendJson, sendJsonSliced } from '../../../../collector/api/respond';
import { Slice } from '../../../../common/slice';

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

describe('sendJsonSliced', () => {
  // a surrogate pair every 7 characters: some fall on the 64 KiB cuts
  const text = (n: number): string => Array.from({ length: n }, (_, i) => `p-${i} ünï 😀`).join('');
  const bodies: Array<[string, unknown]> = [
    ['a policy change answer of megabytes', { version: 7, applied: true, changes: Array.from({ length: 3000 }, (_, i) => ({ op: 'update', name: `p-${i}`, diff: `-  a: ${text(40)}\n+  b: "q\\"` })), warnings: ['w'] }],
    ['a JSON text (taken as it is) longer than a piece', JSON.stringify({ a: text(40_000) })],
    ['fields left out when undefined, lists holding undefined', { a: undefined, b: [undefined, null, 1], c: { d: [1] }, e: [] }],
    ['a small answer', { ok: true }],
    ['not an object', [1, 2, { a: 3 }]],
  ];
  let server: http.Server;
  let body: unknown;
  before(async () => {
    server = http.createServer((req, res) => void (req.url === '/sliced' ? sendJsonSliced(res, 200, body, 1) : sendJson(res, 200, body)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  after(() => server.close());
  const get = (path: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: Buffer }> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path, method }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });

  for (const [what, value] of bodies) {
    it(`${what}: the status, headers and bytes sendJson sends`, async () => {
      body = value;
      for (const method of ['GET', 'HEAD']) {
        const [whole, sliced] = [await get('/whole', method), await get('/sliced', method)];
        assert.equal(sliced.status, whole.status);
        for (const h of ['content-type', 'content-length', 'cache-control']) assert.equal(sliced.headers[h], whole.headers[h], h);
        assert.ok(sliced.bytes.equals(whole.bytes), `${method}: ${sliced.bytes.length} bytes against ${whole.bytes.length}`);
      }
    });
  }
});

describe('bytesSliced', () => {
  it('encodes as Buffer.from does, surrogate pairs across its pieces included', async () => {
    for (const t of ['', 'abc', 'ünï 😀'.repeat(40_000), `${'a'.repeat(65_535)}😀b`]) assert.ok((await bytesSliced(t, new Slice(1))).equals(Buffer.from(t)));
  });
});
