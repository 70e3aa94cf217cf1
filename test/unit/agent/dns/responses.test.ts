import { strict as assert } from 'node:assert';
import { parseQuery, parseResponse } from '../../../../agent/dns/message';
import { addressResponse, answerFromStored, EDNS_UDP_SIZE, formatErrorResponse, rcodeResponse, udpLimit, upstreamQuery } from '../../../../agent/dns/responses';
import { FLAG } from '../../../../agent/dns/wire';
import { opt, query, response, T } from '../../../fixtures/dns-messages';

describe('dns responses', () => {
  it('addressResponse answers the addresses of the question\'s type, pointing at its name, in the client\'s case', () => {
    const m = query('Web.Default.SVC.cluster.local', { id: 77 });
    const out = addressResponse(m, parseQuery(m), ['10.0.1.11', '2001:db8::1', '10.0.1.12'], 5);
    const r = parseResponse(out);
    assert.equal(r.header.id, 77);
    assert.equal(r.header.flags & (FLAG.QR | FLAG.AA | FLAG.RD | FLAG.RA), FLAG.QR | FLAG.AA | FLAG.RD | FLAG.RA);
    assert.deepEqual(r.answers.map((x) => [x.owner, x.data, x.ttl]), [['web.default.svc.cluster.local', '10.0.1.11', 5], ['web.default.svc.cluster.local', '10.0.1.12', 5]]);
    assert.equal(out.subarray(12, 12 + 31).toString('latin1').includes('Web'), true, 'question bytes as the client sent them');
    const six = query('x.test', { type: T.AAAA, edns: 1232 });
    const r6 = parseResponse(addressResponse(six, parseQuery(six), ['10.0.0.1', '2001:db8::1'], 30));
    assert.deepEqual(r6.answers.map((x) => x.data), ['2001:db8:0:0:0:0:0:1']);
    assert.equal(r6.header.arcount, 1, 'EDNS query: OPT in the answer');
    const txt = query('x.test', { type: T.TXT });
    assert.equal(parseResponse(addressResponse(txt, parseQuery(txt), ['10.0.0.1'], 30)).header.ancount, 0, 'NODATA for other types');
  });

  it('rcodeResponse repeats the question, sets the rcode, and has OPT only when the query had it', () => {
    const m = query('evil.test', { id: 9, edns: 4096 });
    const r = parseResponse(rcodeResponse(m, parseQuery(m), 3, { authoritative: true }));
    assert.deepEqual([r.header.id, r.header.rcode, r.header.ancount, r.header.arcount, r.question.name], [9, 3, 0, 1, 'evil.test']);
    assert.ok(r.header.flags & FLAG.AA);
    const plain = query('evil.test');
    const tc = parseResponse(rcodeResponse(plain, parseQuery(plain), 0, { truncated: true }));
    assert.deepEqual([tc.header.arcount, Boolean(tc.header.flags & FLAG.TC)], [0, true]);
  });

  it('formatErrorResponse answers a header with FORMERR and no question, and nothing without a header or to a response', () => {
    const out = formatErrorResponse(Buffer.from([0xab, 0xcd, 0x01, 0x00, 0, 5, 0, 0, 0, 0, 0, 0, 0xff]))!;
    assert.deepEqual([out.readUInt16BE(0), out.readUInt16BE(2) & 0x800f, out.readUInt16BE(4)], [0xabcd, 0x8001, 0]);
    assert.equal(formatErrorResponse(Buffer.alloc(5)), undefined);
    assert.equal(formatErrorResponse(response('a.test')), undefined);
  });

  it('answerFromStored gives a stored answer the client\'s ID and question case, lowers every TTL, drops upstream OPT', () => {
    const up = response('www.example.com', {
      answers: [{ name: 'www.example.com', type: T.A, ttl: 100, data: '192.0.2.1' }],
      authority: [{ name: 'example.com', type: T.NS, ttl: 50, data: 'ns.example.com' }],
      additional: [opt(4096)],
    });
    const parsed = parseResponse(up);
    const msg = Buffer.from(up.subarray(0, parsed.additionalStart));
    msg.writeUInt16BE(0, 10);
    const stored = { msg, questionEnd: parsed.question.end, ttlOffsets: parsed.ttlOffsets, flags: parsed.header.flags };
    const client = query('WWW.example.COM', { id: 4242 });
    const out = answerFromStored(client, parseQuery(client), stored, 30);
    const r = parseResponse(out);
    assert.equal(r.header.id, 4242);
    assert.equal(r.header.arcount, 0);
    assert.deepEqual(r.answers.map((a) => [a.data, a.ttl]), [['192.0.2.1', 70]]);
    assert.equal(out.readUInt32BE(r.ttlOffsets[1]!), 20);
    assert.equal(out.subarray(12, 28).toString('latin1').includes('WWW'), true);
    const edns = query('www.example.com', { edns: 1232 });
    assert.equal(parseResponse(answerFromStored(edns, parseQuery(edns), stored, 500)).answers[0]!.ttl, 0, 'never below 0');
  });

  it('udpLimit: 512 without EDNS, else the client\'s size up to ours', () => {
    assert.equal(udpLimit(parseQuery(query('a'))), 512);
    assert.equal(udpLimit(parseQuery(query('a', { edns: 900 }))), 900);
    assert.equal(udpLimit(parseQuery(query('a', { edns: 65000 }))), EDNS_UDP_SIZE);
  });

  it('upstreamQuery asks the same question with its own ID, RD and our EDNS size', () => {
    const m = query('Api.Example.com', { id: 1, type: T.AAAA, flags: 0 });
    const up = parseQuery(upstreamQuery(m, parseQuery(m), 0xbeef));
    assert.deepEqual([up.header.id, up.header.flags & FLAG.RD, up.question.name, up.question.type, up.edns?.udpSize], [0xbeef, FLAG.RD, 'api.example.com', T.AAAA, EDNS_UDP_SIZE]);
  });
});
