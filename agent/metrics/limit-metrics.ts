/**
 * The proxy's limits as metrics, read at scrape time: connections held and their caps per side,
 * bytes held while sniffing (now, the most ever, the budget), and every refused connection by
 * direction and reason (the refusal log's totals: first-of-a-kind and summarized alike).
 */
import type { Registry } from 'prom-client';
import type { RefusalCount } from '../proxy/refusals';
import { ReadCounter } from './series';

/** What the metrics read of the proxy's limits (agent/proxy/limits). */
export interface LimitSources {
  connections: { caps: { outbound: number; inbound: number; perPod: number }; held(side: 'outbound' | 'inbound'): number };
  sniff: { total: number; perPod: number; usage(): { held: number; highWater: number } };
  refusals: { counts(): RefusalCount[] };
}

export function registerLimitMetrics(registry: Registry, src: LimitSources): void {
  const { connections, sniff, refusals } = src;
  new ReadCounter('palisade_proxy_connections', 'Connections the proxy holds now, by side (outbound: this node\'s pods; inbound: HBONE streams)', () => [
    { labels: { side: 'outbound' }, value: connections.held('outbound') },
    { labels: { side: 'inbound' }, value: connections.held('inbound') },
  ], 'gauge').register(registry);
  new ReadCounter('palisade_proxy_connection_limit', 'Connection caps by side, and per source pod', () => [
    { labels: { side: 'outbound' }, value: connections.caps.outbound },
    { labels: { side: 'inbound' }, value: connections.caps.inbound },
    { labels: { side: 'per-pod' }, value: connections.caps.perPod },
  ], 'gauge').register(registry);
  new ReadCounter('palisade_sniff_bytes', 'Bytes held while reading clients\' first bytes: now (held), the most at once (high_water), the budget and a pod\'s share', () => {
    const u = sniff.usage();
    return [
      { labels: { state: 'held' }, value: u.held },
      { labels: { state: 'high_water' }, value: u.highWater },
      { labels: { state: 'budget' }, value: sniff.total },
      { labels: { state: 'per_pod_budget' }, value: sniff.perPod },
    ];
  }, 'gauge').register(registry);
  new ReadCounter('palisade_connections_refused_total', 'Connections the proxy refused, by direction and reason (every one, summarized or not)', () =>
    refusals.counts().map((c) => ({ labels: { direction: c.direction, reason: c.reason }, value: c.count })),
  ).register(registry);
}
