/**
 * The kernel data path as metrics, read when Prometheus scrapes: every map's entries in use and
 * capacity (max_entries), the kernel's own counters (palisade_stats, and the DNS capture's
 * palisade_dns_stats), and pods refused enrollment. A data path that cannot be read (closing,
 * not installed yet) gives no samples rather than an error: the rest of the scrape still answers.
 */
import type { Registry } from 'prom-client';
import type { MapUsage } from '../datapath/map-usage';
import { ReadCounter, type Labels } from './series';

/** What the metrics read of the data path (agent/datapath/datapath.ts's Datapath is one). */
export interface DatapathSource {
  usage(): MapUsage[];
  stats(): Record<string, number>;
  dnsStats(): Record<string, number>;
}

export interface DatapathMetricsSources {
  datapath: () => DatapathSource | undefined;
  /** Enrollment refusals by reason (agent/workload-sources/node-enrollment.ts). */
  enrollment?: () => { refusals(): Array<{ reason: string; count: number }> } | undefined;
}

/** palisade_stats names (camelCase in the codec) as label values: origUpdateFail -> orig_update_fail. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function quietly<T>(read: () => T[]): T[] {
  try {
    return read();
  } catch {
    return []; // the data path is closing; the next scrape reads it again or finds it gone
  }
}

export function registerDatapathMetrics(registry: Registry, src: DatapathMetricsSources): void {
  // Both gauges of one scrape share one walk of the maps.
  let last = { at: -Infinity, value: [] as MapUsage[] };
  const usage = (): MapUsage[] => {
    const now = performance.now();
    if (now - last.at > 1000) last = { at: now, value: quietly(() => src.datapath()?.usage() ?? []) };
    return last.value;
  };
  new ReadCounter('palisade_bpf_map_entries', 'Entries in use in the eBPF maps of this node', () =>
    usage().map((u) => ({ labels: { map: u.map }, value: u.entries })), 'gauge').register(registry);
  new ReadCounter('palisade_bpf_map_capacity', 'Entries the eBPF maps of this node can hold (max_entries: --max-pods, --kernel-connections)', () =>
    usage().map((u) => ({ labels: { map: u.map }, value: u.capacity })), 'gauge').register(registry);
  const counters = (read: (d: DatapathSource) => Record<string, number>): Array<{ labels: Labels; value: number }> =>
    quietly(() => {
      const d = src.datapath();
      return d ? Object.entries(read(d)).map(([name, value]) => ({ labels: { event: snakeCase(name) }, value })) : [];
    });
  new ReadCounter('palisade_datapath_events_total', 'What the socket programs did, by event (redirected, excluded, orig_update_fail: a connect refused for want of room, tuple_update_fail, v6_denied, drop_uncounted, held: packets of pods refused enrollment)', () =>
    counters((d) => d.stats())).register(registry);
  new ReadCounter('palisade_dns_capture_events_total', 'What the DNS capture program did, by event', () => counters((d) => d.dnsStats())).register(registry);
  const enrollment = src.enrollment;
  if (enrollment) {
    new ReadCounter('palisade_pods_refused_total', 'Pods refused enrollment, by reason (node-pods-full: the pod maps hold --max-pods)', () =>
      (enrollment()?.refusals() ?? []).map((r) => ({ labels: { reason: r.reason }, value: r.count }))).register(registry);
  }
}
