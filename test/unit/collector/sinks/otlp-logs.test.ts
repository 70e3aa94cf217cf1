import { strict as assert } from 'node:assert';
import { FlowLogEncoder } from '../../../../collector/sinks/otlp-logs';
import type { FlowRecord } from '../../../../common/flow';
import { realisticFlow } from '../../../bench/flow-ingest';
import { Rng } from '../../../harness/random';
import { agentFrame, generatedFlow } from './frames';
import { oracleLogsRequest } from '../../../harness/otlp-logs-oracle';
import { decodeLogs } from '../../../harness/otlp-receiver';

const RESOURCE = { 'service.name': 'palisade-collector', 'palisade.trust_domain': 'cluster.local' };

/** Records the written encoder must handle like the OpenTelemetry serializer: long and non-ASCII strings, zeros, big numbers. */
function edgeCases(t: number): FlowRecord[] {
  const base = realisticFlow(1, 'node-a', t);
  return [
    { ...base, http: { method: 'GET', path: '/' + 'ä€😀x'.repeat(200), status: 0 } },
    { ...base, reason: 'r'.repeat(42), policy: 'p'.repeat(43), bytesSent: 0, bytesReceived: 2 ** 53 - 1, durationMs: 0, rule: 0 },
    { ...base, source: { ip: '10.0.0.1' }, destination: { ip: '::ffff:1.2.3.4', host: 'ü.example' }, mtls: false, verdict: 'error', http: undefined, policy: undefined, rule: undefined },
    { ...base, audit: { policy: 'ns/audit-all', rule: 7 }, verdict: 'audit', node: 'n'.repeat(63) },
    { ...base, source: { ...base.source, identity: 'spiffe://' + 'x'.repeat(500) } },
    { ...base, traffic: { route: 'default/web', rule: 1, backend: 'default/web-v2', attempts: 2 } },
    { ...base, time: '2026-12-07T05:00:00.999Z', source: { ip: '10.0.0.1', host: 'ünïcode.example' }, destination: { ip: '10.0.0.2', workload: 'wëb', namespace: 'dëfault' } },
    { ...base, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' } as FlowRecord,
  ];
}

describe('FlowLogEncoder', () => {
  const enc = new FlowLogEncoder(RESOURCE);

  it('writes, for 6,000 generated flows and the edge cases, the request the OpenTelemetry JS serializer writes (decoded with the official definitions)', () => {
    const t = Date.parse('2026-12-07T05:00:00.123Z');
    const observed = t + 1500;
    const all = [...edgeCases(t), ...Array.from({ length: 6_000 }, (_, i) => realisticFlow(i, 'node-a', t + i))];
    for (let i = 0; i < all.length; i += 1000) {
      const batch = all.slice(i, i + 1000);
      const mine = decodeLogs(enc.encode(batch, observed));
      const theirs = decodeLogs(oracleLogsRequest(RESOURCE, batch, observed));
      assert.equal(mine.length, batch.length);
      assert.deepEqual(mine, theirs, `batch at ${i}`);
    }
  });

  it('writes from agents\' frames, for 6,000 generated flows and the edge cases, the request the serializer writes for the flows the collector parsed, byte for byte as from the records', () => {
    const t = Date.parse('2026-12-07T05:00:00.123Z');
    const rng = new Rng(19);
    const all = [...edgeCases(t), ...Array.from({ length: 6_000 }, (_, i) => (i % 3 === 0 ? generatedFlow(rng, t + i) : realisticFlow(i, 'node-a', t + i)))];
    for (let i = 0; i < all.length; i += 500) {
      const batch = all.slice(i, i + 500);
      // as the agent writes a frame (agent/mesh/collector-client.ts), and as JSON.stringify does (other field order, whitespace)
      const frames = [agentFrame(batch, i), Buffer.from(JSON.stringify({ flows: batch, type: 'flows' }, null, i % 1000 === 0 ? 1 : undefined))];
      for (const f of frames) {
        const parsed = (JSON.parse(f.toString('utf8')) as { flows: FlowRecord[] }).flows;
        enc.begin();
        enc.piece({ frame: f, skip: 0, count: batch.length, storedMs: t + 7 });
        const mine = Buffer.concat(enc.request());
        assert.deepEqual(decodeLogs(mine), decodeLogs(oracleLogsRequest(RESOURCE, parsed, t + 7)), `batch at ${i}`);
        assert.deepEqual(mine, Buffer.from(enc.encode(parsed, t + 7)), `batch at ${i}: the same bytes as from the records`);
      }
    }
  });

  it('writes flows off the reader\'s fast path (escapes, other numbers, odd bytes, odd frames) as the collector parsed them', () => {
    const t = Date.parse('2026-12-07T05:00:00.123Z');
    const f = realisticFlow(3, 'node-a', t);
    const json = (x: unknown): string => JSON.stringify(x);
    const notUtf8 = ((): Buffer => {
      const [a, c] = `{"flows":[${json({ ...f, reason: 'RSN' })}]}`.split('RSN');
      return Buffer.concat([Buffer.from(a!), Buffer.from([0x72, 0xff, 0xc3]), Buffer.from(c!)]);
    })();
    const frames: Array<[string, Buffer]> = [
      ['escapes', Buffer.from(`{"flows":[${json({ ...f, reason: 'a"b\\c\n', policy: 'ns/\u00e9' })}]}`.replace('"node-a"', '"node\\u002da"'))],
      ['a number with an exponent, a fraction', Buffer.from(`{"flows":[${json(f).replace(/"bytesSent":\d+/, '"bytesSent":1.5e3').replace(/"durationMs":\d+/, '"durationMs":2.5')}]}`)],
      ['bytes that are not UTF-8', notUtf8],
      ['flows twice', Buffer.from(`{"flows":[${json(f)}],"flows":[${json({ ...f, reason: 'second' })}]}`)],
      ['an object twice', Buffer.from(`{"flows":[${json(f).slice(0, -1)},"source":{"ip":"10.9.9.9","host":"h"}}]}`)],
      ['a field the collector would refuse', Buffer.from(`{"flows":[${json({ ...f, extra: 1 })}]}`)],
    ];
    for (const [name, frame] of frames) {
      const parsed = (JSON.parse(frame.toString('utf8')) as { flows: FlowRecord[] }).flows;
      enc.begin();
      enc.piece({ frame, skip: 0, count: 1, storedMs: t });
      const mine = Buffer.concat(enc.request());
      assert.deepEqual(decodeLogs(mine), decodeLogs(oracleLogsRequest(RESOURCE, parsed, t)), name);
      assert.deepEqual(mine, Buffer.from(enc.encode(parsed, t)), name);
    }
  });

  it('reads pieces of agents\' frames (the bytes as they arrived, cut between any two flows) into one request, leaving out a piece it cannot read', () => {
    const t = Date.parse('2026-12-07T05:00:00.123Z');
    const all = [...edgeCases(t), ...Array.from({ length: 40 }, (_, i) => realisticFlow(i, 'node-a', t + i))];
    const frame = (flows: FlowRecord[], seq: number): Buffer => Buffer.from(JSON.stringify({ type: 'flows', session: 's-1', seq, lost: 0, flows }));
    const a = frame(all.slice(0, 5), 1);
    const b = frame(all.slice(5, 30), 2);
    enc.begin();
    enc.piece({ frame: a, skip: 2, count: 3, storedMs: t + 7 });
    // a piece that cannot be read adds nothing; the next goes on after the last that could
    assert.throws(() => enc.piece({ frame: b, skip: 20, count: 10, storedMs: t }), /does not hold the flows/);
    assert.throws(() => enc.piece({ frame: Buffer.from('{"flows":'), skip: 0, count: 1, storedMs: t }));
    assert.throws(() => enc.piece({ frame: Buffer.from(`{"flows":[${JSON.stringify(all[0])},{"verdict":"maybe"}]}`), skip: 0, count: 2, storedMs: t }));
    enc.piece({ frame: b, skip: 0, count: 10, storedMs: t + 7 });
    const mine = decodeLogs(Buffer.concat(enc.request()));
    assert.equal(mine.length, 13);
    assert.deepEqual(mine, decodeLogs(oracleLogsRequest(RESOURCE, all.slice(2, 15), t + 7)));
  });

  it('carries a traced flow\'s trace id', () => {
    const [traced] = edgeCases(Date.now()).slice(-1);
    const [log] = decodeLogs(enc.encode([traced!]));
    assert.equal(log!.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(log!.spanId, '');
  });

  it('says network.transport by the protocol, from records and from frames alike: tcp for TCP, TLS, HTTP; udp for UDP; none for DNS, ICMP, ARP, other', () => {
    const base = realisticFlow(1, 'node-a', Date.now());
    const want: [FlowRecord['protocol'], string | undefined][] = [['tcp', 'tcp'], ['tls', 'tcp'], ['http', 'tcp'], ['udp', 'udp'], ['dns', undefined], ['icmp', undefined], ['arp', undefined], ['other', undefined]];
    const flows = want.map(([protocol]) => ({ ...base, protocol, ...(protocol !== 'http' && { http: undefined }) }));
    enc.begin();
    enc.piece({ frame: agentFrame(flows, 0), skip: 0, count: flows.length, storedMs: 1 });
    for (const logs of [decodeLogs(enc.encode(flows)), decodeLogs(Buffer.concat(enc.request()))]) {
      assert.deepEqual(logs.map((l) => [l.attributes['palisade.protocol'], l.attributes['network.transport']]), want);
    }
  });

  it('encodes an empty batch as one resource with no records', () => {
    assert.deepEqual(decodeLogs(enc.encode([])), []);
  });

  it('writes the next batch over the last one\'s bytes, unless released (a socket may still be sending them)', () => {
    const t = Date.now();
    const frame = (i: number): Buffer => Buffer.from(JSON.stringify({ flows: [realisticFlow(i, 'node-a', t)] }));
    const e = new FlowLogEncoder(RESOURCE);
    e.begin();
    e.piece({ frame: frame(1), skip: 0, count: 1, storedMs: t });
    const first = e.request()[1]!;
    const copy = Buffer.from(first);
    e.release();
    e.begin();
    e.piece({ frame: frame(2), skip: 0, count: 1, storedMs: t });
    e.request();
    assert.deepEqual(Buffer.from(first), copy, 'released: the first body is untouched');
    e.begin();
    e.piece({ frame: frame(3), skip: 0, count: 1, storedMs: t });
    const third = e.request()[1]!;
    e.begin();
    e.piece({ frame: frame(4), skip: 0, count: 1, storedMs: t });
    e.request();
    assert.equal(third.buffer, e.request()[1]!.buffer, 'not released: the same bytes are written again');
  });
});
