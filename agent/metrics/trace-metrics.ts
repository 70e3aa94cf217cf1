/**
 * The tracer's counts as metrics, read at scrape time: every span by outcome (exported,
 * export-failed, queue-full: none is dropped silently) and the hops not exported because a client,
 * denials or 5xx forced more than their rate (agent/tracing/forced-limit.ts).
 */
import type { Registry } from 'prom-client';
import type { TraceCounts } from '../tracing/tracer';
import { ReadCounter } from './series';

export function registerTraceMetrics(registry: Registry, counts: () => TraceCounts): void {
  new ReadCounter('palisade_trace_spans_total', 'Spans the proxy ended, by outcome: exported, export-failed (the OTLP receiver did not take them), queue-full (dropped: no room to wait for export)', () =>
    Object.entries(counts().spans).map(([outcome, value]) => ({ labels: { outcome }, value })),
  ).register(registry);
  new ReadCounter('palisade_trace_hops_rate_limited_total', 'HTTP hops not exported because the client\'s sampled flag, denials or 5xx forced more than their rate (per source and per node)', () => [
    { labels: {}, value: counts().rateLimitedHops },
  ]).register(registry);
}
