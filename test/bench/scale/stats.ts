/** Figures from samples, pure: percentiles (nearest rank) and the arrival of a version. */
import type { Arrival } from './sim-agent';

/** The p-th percentile (0–100) by nearest rank; null for no samples. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export interface Spread {
  samples: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export function spread(samples: readonly number[]): Spread {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (v: number | null): number | null => (v === null ? null : Math.round(v * 10) / 10);
  return { samples: sorted.length, p50Ms: round(percentile(sorted, 50)), p99Ms: round(percentile(sorted, 99)), maxMs: round(sorted.at(-1) ?? null) };
}

/**
 * The first arrival at or after `since` (ms) whose version is at least `version`, or undefined.
 * Arrivals are in time order; versions rise within one collector process (a restarted collector
 * starts again at 0, hence `since`).
 */
export function firstArrival(arrivals: readonly Arrival[], version: number, since: number): Arrival | undefined {
  let lo = 0;
  let hi = arrivals.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arrivals[mid]!.t < since) lo = mid + 1;
    else hi = mid;
  }
  for (let k = lo; k < arrivals.length; k++) if (arrivals[k]!.version >= version) return arrivals[k];
  return undefined;
}
