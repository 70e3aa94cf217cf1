import { strict as assert } from 'node:assert';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { MeshTracer } from '../../../../agent/tracing/tracer';
import type { TraceHop } from '../../../../agent/tracing/trace-context';

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
