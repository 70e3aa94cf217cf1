import { strict as assert } from 'node:assert';
import { chainAddresses, parseQuery, parseResponse, type AnswerRecord } from '../../../../agent/dns/message';
import { DnsFormatError } from '../../../../agent/dns/wire';
import { opt, query, record, response, soa, T } from '../../../fixtures/dns-messages';

/** `m` with its 16-bit word at `at` set to `v`. */
function withWord(m: Buffer, at: number, v: number): Buffer {
  const out = Buffer.from(m);
  out.writeUInt16BE(v, at);
  return out;
}

describe('dns message', () => {
  describe('parseQuery', () => {
    it('reads the question (lowercase name, type, class, its bytes) and EDNS', () => {
      const m = query('WWW.Example.COM', { type: T.AAAA, edns: 4096 });
      const q = parseQuery(m);
      assert.deepEqual(q.question, { name: 'www.example.com', type: T.AAAA, qclass: 1, start: 12, end: 12 + 17 + 4 });
      assert.deepEqual(q.edns, { udpSize: 4096, dnssecOk: false });
      assert.equal(q.header.id, 0x1234);
    });

    it('reads a query without EDNS, and takes an EDNS size below 512 as 512', () => {
      assert.equal(parseQuery(query('a.test')).edns, undefined);
      assert.equal(parseQuery(query('a.test', { edns: 100 })).edns?.udpSize, 512);
    });

    const bad: Array<[string, Buffer, RegExp]> = [
      ['a header cut short', Buffer.alloc(11), /shorter than a header/],
      ['a response (QR set)', withWord(query('a.test'), 2, 0x8100), /a response/],
      ['no question', withWord(query('a.test'), 4, 0), /0 questions/],
      ['two questions', withWord(query('a.test'), 4, 2), /2 questions/],
      ['an answer record', withWord(query('a.test'), 6, 1), /answer or authority/],
      ['an authority record', withWord(query('a.test'), 8, 1), /answer or authority/],
      ['two additional records', withWord(query('a.test', { edns: 1232 }), 10, 2), /2 additional/],
      ['an additional record that is not OPT', Buffer.concat([withWord(query('a.test'), 10, 1), record({ name: 'x', type: T.A, data: '1.2.3.4' })]), /not an EDNS OPT/],
      ['an OPT record not at the root', Buffer.concat([withWord(query('a.test'), 10, 1), record({ name: 'x', type: T.OPT, data: Buffer.alloc(0) })]), /not an EDNS OPT/],
      ['EDNS version 1', (() => { const m = query('a.test', { edns: 1232 }); m[m.length - 5] = 1; return m; })(), /EDNS version/],
      ['bytes after the question', Buffer.concat([query('a.test'), Buffer.from([0])]), /1 bytes after/],
      ['an OPT record whose data runs past the end', (() => { const m = query('a.test', { edns: 1232 }); m.writeUInt16BE(5, m.length - 2); return m; })(), /runs past the end/],
      ['a question cut short', query('a.test').subarray(0, 12 + 8 + 2), /question cut short/],
      ['a compression pointer in the question', Buffer.concat([withWord(Buffer.alloc(12), 4, 1), Buffer.from([0xc0, 12, 0, 1, 0, 1])]), /point back/],
    ];
    for (const [what, m, why] of bad) {
      it(`refuses ${what}`, () => {
        assert.throws(() => parseQuery(m), (err: unknown) => err instanceof DnsFormatError && why.test(err.message), what);
      });
    }
  });

  describe('parseResponse', () => {
    it('reads A, AAAA and CNAME answers with their TTLs, the smallest TTL and where additional starts', () => {
      const m = response('www.example.com', {
        answers: [
          { name: 'www.example.com', type: T.CNAME, ttl: 600, data: 'edge.example.net' },
          { name: 'edge.example.net', type: T.A, ttl: 60, data: '192.0.2.7' },
          { name: 'edge.example.net', type: T.AAAA, ttl: 120, data: '2001:db8::7' },
          { name: 'edge.example.net', type: T.TXT, ttl: 30, data: Buffer.from([2, 0x68, 0x69]) },
        ],
        additional: [opt(1232)],
      });
      const r = parseResponse(m);
      assert.deepEqual(r.answers, [
        { owner: 'www.example.com', type: T.CNAME, ttl: 600, data: 'edge.example.net' },
        { owner: 'edge.example.net', type: T.A, ttl: 60, data: '192.0.2.7' },
        { owner: 'edge.example.net', type: T.AAAA, ttl: 120, data: '2001:db8:0:0:0:0:0:7' },
      ]);
      assert.equal(r.otherAnswers, 1);
      assert.equal(r.minAnswerTtl, 30);
      assert.equal(r.ttlOffsets.length, 4);
      assert.equal(r.additionalStart, m.length - 11);
      for (const off of r.ttlOffsets) assert.ok([600, 60, 120, 30].includes(m.readUInt32BE(off)));
    });

    it('reads the negative TTL of an SOA in the authority section: min(TTL, MINIMUM)', () => {
      const nx = response('nothing.example', { rcode: 3, authority: [{ name: 'example', type: T.SOA, ttl: 900, data: soa(60) }] });
      assert.equal(parseResponse(nx).negativeTtl, 60);
      const low = response('nothing.example', { rcode: 3, authority: [{ name: 'example', type: T.SOA, ttl: 20, data: soa(60) }] });
      assert.equal(parseResponse(low).negativeTtl, 20);
      assert.equal(parseResponse(response('x.example', { rcode: 3 })).negativeTtl, undefined);
    });

    it('reads names compressed against the question', () => {
      const head = response('www.example.com', { answers: [] });
      const rr = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
      const m = Buffer.concat([withWord(head, 6, 1), rr]);
      assert.deepEqual(parseResponse(m).answers, [{ owner: 'www.example.com', type: T.A, ttl: 5, data: '10.0.0.1' }]);
    });

    const bad: Array<[string, Buffer, RegExp]> = [
      ['a query', query('a.test'), /a query, not a response/],
      ['an A record of 5 bytes', response('a.test', { answers: [{ name: 'a.test', type: T.A, data: Buffer.alloc(5) }] }), /A record of 5 bytes/],
      ['an AAAA record of 4 bytes', response('a.test', { answers: [{ name: 'a.test', type: T.AAAA, data: Buffer.alloc(4) }] }), /AAAA record of 4 bytes/],
      ['a CNAME whose data holds more than a name', response('a.test', { answers: [{ name: 'a.test', type: T.CNAME, data: Buffer.from([1, 0x62, 0, 9]) }] }), /exactly one name/],
      ['counts that cannot fit the message', withWord(response('a.test'), 6, 5000), /cannot fit/],
      ['a record cut short', response('a.test', { answers: [{ name: 'a.test', type: T.A, data: '1.2.3.4' }] }).subarray(0, 40), /cut short|past the end/],
      ['an SOA without its numbers', response('a.test', { authority: [{ name: 'test', type: T.SOA, data: Buffer.from([0, 0, 1, 2]) }] }), /SOA data/],
      ['bytes after the last record', Buffer.concat([response('a.test'), Buffer.from([1, 2])]), /2 bytes after/],
    ];
    for (const [what, m, why] of bad) {
      it(`refuses ${what}`, () => {
        assert.throws(() => parseResponse(m), (err: unknown) => err instanceof DnsFormatError && why.test(err.message), what);
      });
    }
  });

  describe('chainAddresses', () => {
    const a = (owner: string, data: string, ttl = 60): AnswerRecord => ({ owner, type: T.A, ttl, data });
    const cname = (owner: string, data: string): AnswerRecord => ({ owner, type: T.CNAME, ttl: 60, data });

    it('follows CNAMEs from the question to its addresses', () => {
      assert.deepEqual(chainAddresses('www.example.com', [cname('www.example.com', 'edge.example.net'), a('edge.example.net', '192.0.2.7', 20)]), {
        names: ['www.example.com', 'edge.example.net'],
        addresses: [{ ip: '192.0.2.7', ttl: 20 }],
      });
    });

    it('ignores records about names the question does not lead to (an upstream cannot vouch for them)', () => {
      const r = chainAddresses('www.example.com', [a('www.example.com', '192.0.2.1'), a('bank.example', '203.0.113.66')]);
      assert.deepEqual(r.addresses.map((x) => x.ip), ['192.0.2.1']);
    });

    it('stops at a CNAME loop and after 8 hops', () => {
      assert.deepEqual(chainAddresses('a', [cname('a', 'b'), cname('b', 'a'), a('b', '10.0.0.1')]).names, ['a', 'b']);
      const long = Array.from({ length: 12 }, (_, i) => cname(`n${i}`, `n${i + 1}`));
      const r = chainAddresses('n0', [...long, a('n12', '10.0.0.1')]);
      assert.equal(r.names.length, 9);
      assert.deepEqual(r.addresses, []);
    });
  });
});
