import { strict as assert } from 'node:assert';
import { Registry } from 'prom-client';
import { registerTraceMetrics } from '../../../../agent/metrics/trace-metrics';
import type { TraceCounts } from '../../../../agent/tracing/tracer';
import { parsePromText } from './prom-text';

describe('trace metrics', () => {
  it('serve every span by outcome and the rate-limited hops, read at scrape time', async () => {
    const counts: TraceCounts = { spans: { exported: 10, 'export-failed': 2, 'queue-full': 3 }, rateLimitedHops: 0 };
    const registry = new Registry();
    registerTraceMetrics(registry, () => counts);
    counts.rateLimitedHops = 45;
    const families = parsePromText(await registry.metrics());
    const spans = families.get('palisade_trace_spans_total')!;
    assert.equal(spans.type, 'counter');
    assert.deepEqual(
      spans.samples.map((s) => [s.labels.outcome, s.value]),
      [['exported', 10], ['export-failed', 2], ['queue-full', 3]],
    );
    assert.deepEqual(families.get('palisade_trace_hops_rate_limited_total')!.samples.map((s) => s.value), [45]);
  });
});
