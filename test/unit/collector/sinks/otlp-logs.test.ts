import { strict as assert } from 'node:assert';
import { FlowLogEncoder } from '../../../../collector/sinks/otlp-logs';
import type { FlowRecord } from '../../../../common/flow';
import { realisticFlow } from '../../../bench/flow-ingest';
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

  it('builds a request from records encoded in several calls, cut between any two records, as one batch', () => {
    const t = Date.parse('2026-12-07T05:00:00.123Z');
    const all = [...edgeCases(t), ...Array.from({ length: 40 }, (_, i) => realisticFlow(i, 'node-a', t + i))];
    const calls = [all.slice(0, 5), all.slice(5, 6), all.slice(6)].map((r) => enc.records(r, t + 9));
    // parts as the sink cuts them: the second call's record, then the first three of the third
    const third = calls[2]!;
    const parts = [calls[0]!.bytes.subarray(calls[0]!.ends[1]), calls[1]!.bytes, third.bytes.subarray(0, third.ends[2])];
    const mine = decodeLogs(Buffer.concat(enc.request(parts)));
    const theirs = decodeLogs(oracleLogsRequest(RESOURCE, all.slice(2, 9), t + 9));
    assert.equal(mine.length, 7);
    assert.deepEqual(mine, theirs);
  });

  it('reads pieces of agents\' frames (the bytes as they arrived, cut between any two flows) as the serializer writes the same flows', () => {
    const t = Date.parse('2026-12-07T05:00:00.123Z');
    const all = [...edgeCases(t), ...Array.from({ length: 40 }, (_, i) => realisticFlow(i, 'node-a', t + i))];
    const frame = (flows: FlowRecord[], seq: number): Buffer => Buffer.from(JSON.stringify({ type: 'flows', session: 's-1', seq, lost: 0, flows }));
    const a = frame(all.slice(0, 5), 1);
    const b = frame(all.slice(5, 30), 2);
    const pieces = [
      { frame: a, skip: 2, count: 3, storedMs: t + 7 },
      { frame: b, skip: 0, count: 10, storedMs: t + 7 },
    ];
    const mine = decodeLogs(Buffer.concat(enc.request(pieces.map((p) => enc.piece(p)))));
    assert.equal(mine.length, 13);
    assert.deepEqual(mine, decodeLogs(oracleLogsRequest(RESOURCE, all.slice(2, 15), t + 7)));
    assert.throws(() => enc.piece({ frame: b, skip: 20, count: 10, storedMs: t }), /does not hold the flows/);
    assert.throws(() => enc.piece({ frame: Buffer.from('{"flows":'), skip: 0, count: 1, storedMs: t }));
  });

  it('carries a traced flow\'s trace id', () => {
    const [traced] = edgeCases(Date.now()).slice(-1);
    const [log] = decodeLogs(enc.encode([traced!]));
    assert.equal(log!.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(log!.spanId, '');
  });

  it('encodes an empty batch as one resource with no records', () => {
    assert.deepEqual(decodeLogs(enc.encode([])), []);
  });
});
