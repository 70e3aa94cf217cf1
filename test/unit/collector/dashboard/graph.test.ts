import { strict as assert } from 'node:assert';
import { buildGraph, lockOf, nodeId, parseNodeId } from '../../../../collector/dashboard/graph';
import type { EdgeTotalsRow } from '../../../../collector/flows/rollup-query';
import { LATENCY_BUCKETS, latencyBucket } from '../../../../collector/flows/rollup';

function row(r: Record<string, string | number>): EdgeTotalsRow {
  const base: Record<string, unknown> = {
    src_kind: 'workload', src_ns: 'default', src: 'client', dst_kind: 'workload', dst_ns: 'default', dst: 'web-2',
    protocol: 'http', verdict: 'allowed', policy: '', flows: 10, requests: 10, errors: 0, bytes_sent: 1000, bytes_received: 2000, mtls: 10, local: 0,
  };
  for (let i = 0; i < LATENCY_BUCKETS; i++) base[`b${i}`] = 0;
  base[`b${latencyBucket(4)}`] = 10;
  return { ...(base as unknown as EdgeTotalsRow), ...r } as EdgeTotalsRow;
}

describe('service map graph', () => {
  describe('nodeId / parseNodeId', () => {
    const cases: Array<[string, string, ReturnType<typeof parseNodeId>]> = [
      ['workload', nodeId('workload', 'default', 'web-1'), { kind: 'workload', namespace: 'default', name: 'web-1' }],
      ['host', nodeId('host', '', 'allowed.example.test'), { kind: 'host', namespace: '', name: 'allowed.example.test' }],
      ['address', nodeId('ip', '', '172.31.0.100'), { kind: 'ip', namespace: '', name: '172.31.0.100' }],
      ['no kind', 'web-1', undefined],
      ['unknown kind', 'x:y', undefined],
      ['workload without namespace', 'w:/web', undefined],
      ['workload without name', 'w:default/', undefined],
    ];
    for (const [what, id, want] of cases) it(what, () => assert.deepEqual(parseNodeId(id), want));
  });

  describe('lockOf', () => {
    it('full when every flow was secured, partial when some, none when none', () => {
      assert.equal(lockOf(10, 10), 'full');
      assert.equal(lockOf(10, 3), 'partial');
      assert.equal(lockOf(10, 0), 'none');
      assert.equal(lockOf(0, 0), 'none');
    });
  });

  describe('buildGraph', () => {
    it('sums rows per pair, with rates over the window, p95, the lock, and a separate denied edge naming its policies', () => {
      const g = buildGraph(
        [
          row({}),
          row({ protocol: 'tcp', flows: 2, requests: 0, mtls: 0, local: 2, [`b${latencyBucket(4)}`]: 0 }),
          row({ verdict: 'denied', policy: 'default/deny-admin', flows: 3, requests: 3, mtls: 3 }),
          row({ verdict: 'denied', policy: 'default/other', flows: 1, requests: 1, mtls: 1 }),
          row({ dst_kind: 'host', dst_ns: '', dst: 'allowed.example.test', protocol: 'tls', requests: 0, mtls: 0 }),
          row({ src_kind: 'ip', src_ns: '', src: '192.0.2.7', mtls: 5 }),
        ],
        { seconds: 100, maxEdges: 10 },
      );
      const e = g.edges.find((x) => x.id === 'w:default/client->w:default/web-2')!;
      assert.equal(e.flows, 12);
      assert.equal(e.requests, 10);
      assert.equal(e.rps, 0.1);
      assert.equal(e.bps, 60, 'bytes both ways of both protocols over 100 s');
      assert.equal(e.lock, 'full', 'mTLS and node-local flows are all secured');
      assert.deepEqual(e.protocols, ['http', 'tcp']);
      assert.ok(e.p95Ms !== undefined && e.p95Ms > 3 && e.p95Ms <= 5);
      const d = g.edges.find((x) => x.id === 'w:default/client->w:default/web-2#denied')!;
      assert.equal(d.denied, true);
      assert.equal(d.flows, 4);
      assert.deepEqual(d.policies, ['default/deny-admin', 'default/other']);
      const egress = g.edges.find((x) => x.target === 'host:allowed.example.test')!;
      assert.equal(egress.egress, true);
      assert.equal(g.nodes.find((n) => n.id === 'host:allowed.example.test')!.kind, 'external');
      assert.equal(g.edges.find((x) => x.source === 'ip:192.0.2.7')!.lock, 'partial');
      assert.equal(g.nodes.find((n) => n.id === 'ip:192.0.2.7')!.kind, 'address');
      assert.equal(g.nodes.find((n) => n.id === 'w:default/web-2')!.denied, 4);
      assert.deepEqual(g.namespaces, ['default']);
      assert.deepEqual(g.hidden, { edges: 0, nodes: 0 });
    });

    it('keeps the busiest edges under the cap and counts what it hides', () => {
      const rows = Array.from({ length: 30 }, (_, i) => row({ src: `c${i}`, flows: i + 1 }));
      const g = buildGraph(rows, { seconds: 60, maxEdges: 5 });
      assert.equal(g.edges.length, 5);
      assert.deepEqual(g.edges.map((e) => e.flows), [30, 29, 28, 27, 26]);
      assert.equal(g.nodes.length, 6);
      assert.deepEqual(g.hidden, { edges: 25, nodes: 25 });
    });
  });
});
