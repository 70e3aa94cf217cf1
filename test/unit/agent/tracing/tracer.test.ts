import { strict as assert } from 'node:assert';
import { SpanKind } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { InMemorySpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace';
import type { HttpRecord } from '../../../../agent/proxy/http';
import { traced } from '../../../../agent/proxy/proxy-flow';
import { MeshTracer } from '../../../../agent/tracing/tracer';
import type { TraceHop } from '../../../../agent/tracing/trace-context';
import type { FlowRecord } from '../../../../common/flow';
import { realisticFlow } from '../../../bench/flow-ingest';

const hop = (sampled: boolean, parent = true): TraceHop => ({
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  ...(parent ? { parentSpanId: '00f067aa0ba902b7' } : {}),
  serverSpanId: '1111111111111111',
  clientSpanId: '2222222222222222',
  sampled,
});

describe('MeshTracer.finish', () => {
  // [what, sampled, status, denied, forwarded, spans exported]
  const cases: Array<[string, boolean, number, boolean, boolean, number]> = [
    ['a sampled 200, forwarded: server and client span', true, 200, false, true, 2],
    ['a sampled 403 the proxy answered itself: a server span only', true, 403, true, false, 1],
    ['an unsampled 200: nothing', false, 200, false, true, 0],
    ['an unsampled 404 from the workload: nothing', false, 404, false, true, 0],
    ['an unsampled denied request: exported anyway', false, 403, true, false, 1],
    ['an unsampled 503 from the proxy: exported anyway', false, 503, false, false, 1],
    ['an unsampled 500 from the workload: exported anyway', false, 500, false, true, 2],
  ];
  for (const [what, sampled, status, denied, forwarded, count] of cases) {
    it(what, async () => {
      const exporter = new InMemorySpanExporter();
      const tracer = new MeshTracer({ url: 'http://unused.invalid/v1/traces', sampleRate: 0, node: 'node-2', exporter });
      const now = Date.now();
      const exported = tracer.finish(hop(sampled), { name: 'GET', startMs: now - 10, endMs: now, ...(forwarded && { upstreamStartMs: now - 5 }), status, denied, attributes: { 'palisade.verdict': denied ? 'denied' : 'allowed' } });
      await tracer.flush();
      const spans = exporter.getFinishedSpans();
      await tracer.close();
      assert.equal(exported, count > 0);
      assert.equal(spans.length, count);
      if (count === 0) return;
      const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
      assert.equal(server.spanContext().spanId, '1111111111111111');
      assert.equal(server.parentSpanContext?.spanId, '00f067aa0ba902b7');
      assert.equal(server.status.code, denied || status >= 500 ? 2 : 0);
      if (count === 2) assert.equal(spans.find((s) => s.kind === SpanKind.CLIENT)!.parentSpanContext?.spanId, '1111111111111111');
    });
  }
});

describe('MeshTracer: what it exports beyond its sampling, and what it counts', () => {
  const outcome = (status = 200, denied = false, source = 'spiffe://cluster.local/ns/a/sa/client') => {
    const now = Date.now();
    return { name: 'GET', startMs: now - 2, endMs: now, upstreamStartMs: now - 1, status, denied, attributes: {}, source };
  };

  it('a client marking every request sampled gets its forced rate exported, no more; the rest are counted', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = new MeshTracer({ url: 'http://unused.invalid/v1/traces', sampleRate: 0, node: 'node-2', exporter, forced: { perSource: 5, total: 1000 } });
    const clientSampled: TraceHop = { ...hop(true), clientSampled: true };
    const got = Array.from({ length: 50 }, () => tracer.finish(clientSampled, outcome()));
    // another source keeps its own share; denials and 5xx draw on the same forced rate
    const other = Array.from({ length: 3 }, () => tracer.finish(hop(false), outcome(503, false, '10.1.0.9')));
    await tracer.flush();
    assert.equal(got.filter(Boolean).length, 5);
    assert.deepEqual(other, [true, true, true]);
    assert.equal(exporter.getFinishedSpans().length, 2 * 8);
    assert.equal(tracer.counts().rateLimitedHops, 45);
    assert.deepEqual(tracer.counts().spans, { exported: 16, 'export-failed': 0, 'queue-full': 0 });
    await tracer.close();
  });

  it('hops it sampled itself are not limited', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = new MeshTracer({ url: 'http://unused.invalid/v1/traces', sampleRate: 1, node: 'node-2', exporter, forced: { perSource: 1, total: 1 } });
    assert.ok(Array.from({ length: 20 }, () => tracer.finish(hop(true), outcome())).every(Boolean));
    await tracer.flush();
    assert.equal(exporter.getFinishedSpans().length, 40);
    assert.equal(tracer.counts().rateLimitedHops, 0);
    await tracer.close();
  });

  it('counts every span once: exported, export-failed, queue-full (and the flow carries no trace id for spans it had no room for)', async () => {
    let fail = true;
    const exported: number[] = [];
    const exporter: SpanExporter = {
      export: (spans, done) => {
        exported.push(spans.length);
        setImmediate(() => done({ code: fail ? ExportResultCode.FAILED : ExportResultCode.SUCCESS }));
      },
      shutdown: async () => {},
    };
    const tracer = new MeshTracer({ url: 'http://unused.invalid/v1/traces', sampleRate: 1, node: 'node-2', exporter, maxQueue: 6, exportIntervalMs: 60_000 });
    const results = Array.from({ length: 5 }, () => tracer.finish(hop(true), outcome())); // 2 spans each: room for 3 hops
    assert.deepEqual(results, [true, true, true, false, false]);
    const r: HttpRecord = { method: 'GET', path: '/', host: 'web', status: 200, bytesSent: 0, bytesReceived: 0, durationMs: 1, trace: hop(true) };
    const flow = traced(tracer, realisticFlow(1, 'node-2', Date.now()), r);
    assert.equal(flow.traceId, undefined, 'no room: no trace id');
    await tracer.flush(); // the 6 queued spans fail
    fail = false;
    assert.equal(tracer.finish(hop(true), outcome()), true);
    await tracer.flush();
    // queue-full: two hops of 2 spans, and the traced flow's server span (it was not forwarded)
    assert.deepEqual(tracer.counts().spans, { exported: 2, 'export-failed': 6, 'queue-full': 5 });
    await tracer.close();
  });
});

describe('traced: decide, then build', () => {
  it('reads nothing of the flow beyond its source for a hop that is not exported, and everything for one that is', async () => {
    const tracer = new MeshTracer({ url: 'http://unused.invalid/v1/traces', sampleRate: 0, node: 'node-2', exporter: new InMemorySpanExporter() });
    const reads = (sampled: boolean): { count: number; flow: FlowRecord } => {
      const counter = { count: 0, flow: realisticFlow(3, 'node-2', Date.now()) };
      const base = counter.flow;
      counter.flow = new Proxy(base, {
        get: (t, k) => {
          if (k !== 'source' && k !== 'verdict') counter.count++;
          return Reflect.get(t, k);
        },
      });
      const r: HttpRecord = { method: 'GET', path: '/', host: 'web', status: 200, bytesSent: 0, bytesReceived: 0, durationMs: 1, trace: hop(sampled) };
      traced(tracer, counter.flow, r);
      return counter;
    };
    assert.equal(reads(false).count, 0);
    const exported = reads(true);
    assert.ok(exported.count > 5, `${exported.count} reads`);
    assert.equal(exported.flow.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    await tracer.close();
  });
});
