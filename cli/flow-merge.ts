/**
 * `palisade observe` over several collectors (replicas, each with its own store): their pages
 * merged into one, newest first, as one collector would have answered. A flow two replicas both
 * stored (a batch resent after a failover: common/flows-api.ts StoredFlow `origin`) is shown once.
 */
import type { StoredFlow } from '../common/flows-api';

export interface MergedPage {
  /** Newest first, at most `limit`. */
  flows: StoredFlow[];
  /** Flows left out because another collector's copy of the same flow is shown. */
  duplicates: number;
}

/** The same flow wherever it is stored: node + origin (undefined for flows stored without an origin: never merged). */
export function flowKey(f: StoredFlow): string | undefined {
  return f.origin === undefined ? undefined : `${f.node} ${f.origin}`;
}

/** Merge pages (each newest first, as the API answers) into the newest `limit` flows, each flow once. */
export function mergeFlowPages(pages: readonly (readonly StoredFlow[])[], limit: number): MergedPage {
  const seen = new Set<string>();
  const all: Array<{ f: StoredFlow; t: number; page: number }> = [];
  let duplicates = 0;
  pages.forEach((page, i) => {
    for (const f of page) {
      const key = flowKey(f);
      if (key !== undefined) {
        if (seen.has(key)) {
          duplicates++;
          continue;
        }
        seen.add(key);
      }
      all.push({ f, t: Date.parse(f.time), page: i });
    }
  });
  // Newest first; equal times keep each collector's own order (its id order), first collector first.
  all.sort((a, b) => b.t - a.t || a.page - b.page || b.f.id - a.f.id);
  return { flows: all.slice(0, limit).map((e) => e.f), duplicates };
}
