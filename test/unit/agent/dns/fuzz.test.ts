/**
 * Generated hostile input, seeded (the same cases every run): valid queries and responses mutated
 * byte by byte, cut, stretched, given random counts and compression pointers, and plain random
 * bytes. The parser may only answer or throw DnsFormatError, quickly; the proxy's answerer must
 * never throw, every answer it writes must itself parse strictly and carry the query's ID, and a
 * pod may learn an address only from an upstream answer that parsed and matched its question.
 */
import { strict as assert } from 'node:assert';
import { isIP } from 'node:net';
import { Answerer } from '../../../../agent/dns/answerer';
import { DnsCache } from '../../../../agent/dns/cache';
import { parseQuery, parseResponse, type Query, type Response } from '../../../../agent/dns/message';
import { MeshNames } from '../../../../agent/dns/mesh-names';
import { PodNames } from '../../../../agent/dns/pod-names';
import type { UpstreamResult } from '../../../../agent/dns/upstream';
import { DnsFormatError } from '../../../../agent/dns/wire';
import { indexOf } from '../../common/policy/helpers';
import { CLIENT_POD, opt, prng, query, response, soa, T } from '../../../fixtures/dns-messages';

const CASES = 100_000;

const QUERIES = [
  query('www.example.com'),
  query('Api.Example.COM', { type: T.AAAA, edns: 4096 }),
  query('web', { edns: 1232 }),
  query('a.b.c.d.e.f.g.example'),
  query('', { type: T.TXT }),
];

function compressedResponse(): Buffer {
  // www.example.com CNAME edge.(pointer to example.com) ; edge... A, names pointing at the question.
  const base = response('www.example.com', { answers: [] });
  const cname = Buffer.from([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 7, 4, 0x65, 0x64, 0x67, 0x65, 0xc0, 16]);
  const a = Buffer.from([0xc0, base.length + 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 9]);
  const m = Buffer.concat([base, cname, a]);
  m.writeUInt16BE(2, 6);
  return m;
}

const RESPONSES = [
  response('www.example.com', { answers: [{ name: 'www.example.com', type: T.A, data: '192.0.2.1' }, { name: 'www.example.com', type: T.AAAA, data: '2001:db8::1' }], additional: [opt(1232)] }),
  response('nx.example.com', { rcode: 3, authority: [{ name: 'example.com', type: T.SOA, ttl: 60, data: soa(30) }] }),
  compressedResponse(),
];

/** One generated case from `base`: mutated, cut, grown, re-counted, pointer-laden, or random. */
function mutate(rand: () => number, base: Buffer): Buffer {
  const pick = (n: number): number => Math.floor(rand() * n);
  const kind = pick(8);
  if (kind === 0) return Buffer.from(Array.from({ length: pick(600) }, () => pick(256)));
  const m = Buffer.from(base);
  switch (kind) {
    case 1:
      for (let i = 1 + pick(6); i > 0; i--) m[pick(m.length)] = pick(256);
      return m;
    case 2:
      return m.subarray(0, pick(m.length));
    case 3:
      return Buffer.concat([m, Buffer.from(Array.from({ length: 1 + pick(40) }, () => pick(256)))]);
    case 4:
      for (let i = 4; i < 12; i += 2) if (rand() < 0.5) m.writeUInt16BE(pick(0x10000) & (rand() < 0.5 ? 0xff : 0xffff), i);
      return m;
    case 5: {
      // a compression pointer somewhere, to anywhere
      const at = 12 + pick(Math.max(1, m.length - 13));
      if (at + 1 < m.length) {
        m[at] = 0xc0 | pick(4);
        m[at + 1] = pick(256);
      }
      return m;
    }
    case 6: {
      // a label length byte made large
      const at = 12 + pick(Math.max(1, m.length - 12));
      if (at < m.length) m[at] = 0x3f + pick(0xc1);
      return m;
    }
    default: {
      // a record length changed
      const at = m.length - 1 - pick(Math.min(m.length, 30));
      if (at > 12 && at + 1 < m.length) m.writeUInt16BE(pick(0x10000), at);
      return m;
    }
  }
}

/** Parse with `fn`; only DnsFormatError may come out. */
function tryParse<T>(fn: (m: Buffer) => T, m: Buffer): T | undefined {
  try {
    return fn(m);
  } catch (err) {
    if (err instanceof DnsFormatError) return undefined;
    throw new Error(`${(err as Error).name}: ${(err as Error).message} on ${m.toString('hex')}`);
  }
}

function checkResponse(r: Response, m: Buffer): void {
  for (const a of r.answers) {
    if (a.type === T.A) assert.equal(isIP(a.data), 4, a.data);
    if (a.type === T.AAAA) assert.equal(isIP(a.data), 6, a.data);
    assert.ok(a.owner.length <= 255 * 4);
  }
  for (const off of r.ttlOffsets) assert.ok(off + 4 <= m.length);
  assert.ok(r.additionalStart <= m.length);
}

const POD = CLIENT_POD;

describe('dns parser and answerer under generated hostile input', function () {
  this.timeout(120_000);

  it(`parseQuery and parseResponse: ${CASES} cases, each answered or refused as a DnsFormatError, quickly`, () => {
    const rand = prng(0x5eed);
    const times: number[] = [];
    let accepted = 0;
    for (let i = 0; i < CASES; i++) {
      const base = i % 2 === 0 ? QUERIES[i % QUERIES.length]! : RESPONSES[i % RESPONSES.length]!;
      const m = mutate(rand, base);
      const t0 = process.cpuUsage();
      const q = tryParse(parseQuery, m);
      const r = tryParse(parseResponse, m);
      const used = process.cpuUsage(t0);
      times.push((used.user + used.system) / 1000);
      if (q) assert.ok(q.question.end <= m.length);
      if (r) checkResponse(r, m);
      if (q || r) accepted++;
    }
    // Bounded work per message (wire.ts): no case stands out but for GC and JIT pauses. CPU time,
    // not wall time: other processes on the machine do not count.
    times.sort((a, b) => a - b);
    const p999 = times[Math.floor(times.length * 0.999)]!;
    assert.ok(p999 < 2, `99.9th percentile ${p999} ms`);
    assert.ok(accepted > CASES / 50, `the generator still produces parseable messages (${accepted})`);
  });

  it(`the answerer: ${CASES} generated queries, upstream answering generated responses; every answer parses, nothing is learned from a bad one`, async () => {
    const rand = prng(0xbad5eed);
    const names = new PodNames();
    const learnedFrom = new Map<string, Set<string>>();
    const upstream = {
      async resolve(_msg: Buffer, q: Query): Promise<UpstreamResult> {
        const m = mutate(rand, RESPONSES[Math.floor(rand() * RESPONSES.length)]!);
        const r = tryParse(parseResponse, m);
        // The real Upstream accepts only a response to the question asked (upstream.ts answerTo).
        if (!r || r.question.name !== q.question.name || r.question.type !== q.question.type || r.question.qclass !== q.question.qclass) {
          return { kind: 'failed', reason: 'upstream-timeout' };
        }
        const ips = learnedFrom.get(q.question.name) ?? new Set<string>();
        for (const a of r.answers) ips.add(a.data);
        learnedFrom.set(q.question.name, ips);
        return { kind: 'answer', msg: m, response: r, server: { ip: '10.255.0.53', port: 53 }, transport: 'udp' };
      },
    };
    const answerer = new Answerer({
      mesh: new MeshNames('cluster.local', { version: () => '1', entries: () => [{ name: 'web', namespace: 'default', ip: '10.0.1.11' }] }),
      hosts: undefined,
      cache: new DnsCache({ maxEntries: 500 }),
      upstream,
      names,
      policies: { index: indexOf('') },
    });
    const seen = new Set<string>();
    let answered = 0;
    for (let i = 0; i < CASES; i++) {
      const m = mutate(rand, QUERIES[i % QUERIES.length]!);
      const { response: out, outcome } = await answerer.answer(m, POD, i % 3 === 0 ? 'tcp' : 'udp');
      if (outcome.name !== undefined) seen.add(outcome.name);
      if (!out) continue;
      answered++;
      assert.equal(out.readUInt16BE(0), m.readUInt16BE(0), 'the query\'s ID');
      // FORMERR to a query whose question could not be read is a header alone; anything else parses whole.
      const formErr = out.length === 12 && (out.readUInt16BE(2) & 0x800f) === 0x8001;
      assert.ok(formErr || tryParse(parseResponse, out), `an answer that does not parse, to ${m.toString('hex')}: ${out.toString('hex')}`);
    }
    assert.ok(answered > CASES / 4, `answered ${answered}`);
    for (const name of seen) {
      for (const ip of names.addressesFor('default/client', name)) {
        assert.ok(learnedFrom.get(name)?.has(ip) ?? [...learnedFrom.values()].some((s) => s.has(ip)), `${name} -> ${ip} learned from nothing`);
      }
    }
  });
});
