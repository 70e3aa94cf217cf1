import { strict as assert } from 'node:assert';
import type { FlowRecord } from '../../../../common/flow';
import { edgeKeyOf, latencyBucket, LATENCY_BOUNDS_MS, quantile, rollUp, LATENCY_BUCKETS } from '../../../../collector/flows/rollup';

const T = Date.parse('2025-01-01T10:00:30Z');

function flow(f: Partial<FlowRecord>): FlowRecord {
  return {
    time: new Date(T).toISOString(),
    node: 'n1',
    direction: 'inbound',
    source: { ip: '10.0.1.10', workload: 'client', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/client' },
    destination: { ip: '10.0.2.10', port: 8080, workload: 'web-2', namespace: 'default' },
    protocol: 'http',
    http: { method: 'GET', path: '/', status: 200 },
    verdict: 'allowed',
    reason: 'no-policy',
    mtls: true,
    bytesSent: 10,
    bytesReceived: 20,
    durationMs: 4,
    ...f,
  };
}

describe('edge rollup', () => {
  describe('edgeKeyOf', () => {
    const cases: Array<[string, Partial<FlowRecord>, string | undefined]> = [
      ['an inbound request: workload to workload', {}, 'workload default/client → workload default/web-2 http allowed'],
      ['an outbound record is not counted (its inbound one is)', { direction: 'outbound' }, undefined],
      ['egress with a host: the host', { direction: 'egress', destination: { ip: '172.31.0.100', port: 443, host: 'allowed.example.test' }, protocol: 'tls', http: undefined }, 'workload default/client → host /allowed.example.test tls allowed'],
      ['egress without a name: the address', { direction: 'egress', destination: { ip: '172.31.0.100', port: 80 }, protocol: 'tcp', http: undefined }, 'workload default/client → ip /172.31.0.100 tcp allowed'],
      ['a source the mesh does not know: its address', { source: { ip: '192.0.2.7' } }, 'ip /192.0.2.7 → workload default/web-2 http allowed'],
      ['a denial keeps its policy', { verdict: 'denied', reason: 'denied-by-policy', policy: 'default/deny-admin' }, 'workload default/client → workload default/web-2 http denied default/deny-admin'],
      ['an allowed flow drops the policy (one edge per pair)', { policy: 'default/allow-web' }, 'workload default/client → workload default/web-2 http allowed'],
    ];
    for (const [what, f, want] of cases) {
      it(what, () => {
        const k = edgeKeyOf(flow(f), T);
        const got = k && `${k.srcKind} ${k.srcNs}/${k.src} → ${k.dstKind} ${k.dstNs}/${k.dst} ${k.protocol} ${k.verdict}${k.policy ? ` ${k.policy}` : ''}`;
        assert.equal(got, want);
        if (k) assert.equal(k.minute, Math.floor(T / 60_000));
      });
    }
  });

  describe('latencyBucket and quantile', () => {
    it('puts a duration in the first bucket whose bound holds it, the rest in the last', () => {
      assert.equal(latencyBucket(0), 0);
      assert.equal(latencyBucket(1), 0);
      assert.equal(latencyBucket(2), 1);
      assert.equal(latencyBucket(4), 3);
      assert.equal(latencyBucket(60_000), LATENCY_BOUNDS_MS.length - 1);
      assert.equal(latencyBucket(60_001), LATENCY_BOUNDS_MS.length);
    });
    it('interpolates inside the bucket like histogram_quantile, and is undefined when empty', () => {
      const b = new Array<number>(LATENCY_BUCKETS).fill(0);
      assert.equal(quantile(b, 0.95), undefined);
      b[latencyBucket(4)] = 100; // all in (3, 5]
      assert.equal(quantile(b, 0.5), 4);
      assert.equal(quantile(b, 1), 5);
      b[latencyBucket(100)] = 100; // half in (75, 100]
      assert.ok(Math.abs(quantile(b, 0.95)! - (75 + 25 * 0.9)) < 1e-9);
    });
  });

  describe('rollUp', () => {
    it('counts flows, requests, 5xx and errors, bytes, mTLS and node-local flows per key', () => {
      const flows = [
        flow({}),
        flow({ http: { method: 'GET', path: '/x', status: 503 }, durationMs: 120 }),
        flow({ mtls: false }), // same node: never on the network
        flow({ verdict: 'denied', reason: 'denied-by-policy', policy: 'default/deny-admin' }),
        flow({ direction: 'egress', destination: { ip: '172.31.0.100', port: 80 }, protocol: 'tcp', http: undefined, verdict: 'error', reason: 'upstream-failed', mtls: false }),
      ];
      const out = [...rollUp(flows, flows.map(() => T)).values()];
      assert.equal(out.length, 3);
      const allowed = out.find((e) => e.key.verdict === 'allowed')!.counts;
      assert.deepEqual(
        { flows: allowed.flows, requests: allowed.requests, errors: allowed.errors, mtls: allowed.mtls, local: allowed.local, bytesSent: allowed.bytesSent, bytesReceived: allowed.bytesReceived },
        { flows: 3, requests: 3, errors: 1, mtls: 2, local: 1, bytesSent: 30, bytesReceived: 60 },
      );
      assert.equal(allowed.buckets.reduce((a, b) => a + b, 0), 3);
      assert.equal(out.find((e) => e.key.verdict === 'denied')!.counts.flows, 1);
      const egress = out.find((e) => e.key.dstKind === 'ip')!.counts;
      assert.deepEqual({ flows: egress.flows, requests: egress.requests, errors: egress.errors, local: egress.local }, { flows: 1, requests: 0, errors: 1, local: 0 });
    });
  });
});
