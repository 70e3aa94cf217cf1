/**
 * The graph API's totals at the cost of what changed (docs/architecture.md "The dashboard"): the
 * settled minutes of a window (older than the live ones, LIVE_MINUTES) are summed once per
 * filter and kept; a refresh reads only the live minutes and adds them. When the window slides,
 * the minutes it gained are added and the ones it lost subtracted (integer sums: exact). The
 * rollup is read a few minutes at a time with the event loop let go in between, so no step holds
 * it for longer than one such read. A settled minute changes only by a late batch (the store
 * counts those: the filter's sums are then made again) or by pruning (the store's floor: minutes
 * below it count for nothing, and sums still holding one are made again).
 */
import { KeyedQueue } from '../../common/keyed-queue';
import { LIVE_MINUTES } from '../flows/rollup';
import { RAW_COUNTS, type EdgeTotalsQuery, type RawEdgeTotals } from '../flows/rollup-query';

export interface TotalsSource {
  edgeTotalsRaw(q: EdgeTotalsQuery): RawEdgeTotals[];
  /** how many batches have changed a settled minute so far */
  lateRollupWrites(): number;
  /** the first minute the rollup still holds (older ones were pruned) */
  rollupFloorMinute(): number;
}

export interface CacheOptions {
  /** filters whose sums are kept (least recently used go first) */
  maxFilters?: number;
  /** a read of the rollup should take about this long (ms): more minutes per read while faster */
  sliceMs?: number;
  /** let the event loop go (tests may count the turns) */
  pause?: () => Promise<void>;
  clock?: () => number;
}

type Filter = Omit<EdgeTotalsQuery, 'fromMinute' | 'toMinute'>;
type Sums = Map<string, RawEdgeTotals>;

interface Entry {
  from: number;
  to: number;
  late: number;
  rows: Sums;
  /** the rows in key order, made when first asked after a change */
  sorted?: RawEdgeTotals[];
}

const rowKey = (r: RawEdgeTotals): string => r.slice(0, RAW_COUNTS).join('\u0000');

/** The order SQLite's GROUP BY gives (by the key columns), so the graph is built from rows in the same order. */
export function byKey(a: RawEdgeTotals, b: RawEdgeTotals): number {
  for (let i = 0; i < RAW_COUNTS; i++) {
    if (a[i]! < b[i]!) return -1;
    if (a[i]! > b[i]!) return 1;
  }
  return 0;
}

/** Add (or take away) `rows` to the sums, never writing to an array already in them; a key whose flows come to 0 is gone (every rollup row holds at least one flow). */
export function addRows(into: Sums, rows: readonly RawEdgeTotals[], sign: 1 | -1): void {
  for (const r of rows) {
    const k = rowKey(r);
    const have = into.get(k);
    if (have === undefined) {
      if (sign > 0) into.set(k, [...r]);
      continue;
    }
    // a new array: the old one may have been handed out
    const sum = have.map((v, i) => (i < RAW_COUNTS ? v : (v as number) + sign * (r[i] as number)));
    if (sum[RAW_COUNTS] === 0) into.delete(k);
    else into.set(k, sum);
  }
}

/** Two lists in key order as one, rows of the same key summed (new arrays; the inputs are left as they are). */
export function mergeSorted(a: readonly RawEdgeTotals[], b: readonly RawEdgeTotals[]): RawEdgeTotals[] {
  const out: RawEdgeTotals[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const o = byKey(a[i]!, b[j]!);
    if (o < 0) out.push(a[i++]!);
    else if (o > 0) out.push(b[j++]!);
    else {
      const x = a[i++]!;
      const y = b[j++]!;
      out.push(x.map((v, n) => (n < RAW_COUNTS ? v : (v as number) + (y[n] as number))));
    }
  }
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

const inOrder = (rows: RawEdgeTotals[]): RawEdgeTotals[] => {
  for (let i = 1; i < rows.length; i++) if (byKey(rows[i - 1]!, rows[i]!) > 0) return rows.sort(byKey);
  return rows;
};

export class GraphTotalsCache {
  private readonly entries = new Map<string, Entry>();
  /** one filter's settled sums are made one read at a time (a key is gone once its work settles) */
  private readonly queue = new KeyedQueue();
  private readonly maxFilters: number;
  private readonly sliceMs: number;
  private readonly pause: () => Promise<void>;
  private readonly clock: () => number;
  /** minutes per read, adapted to the rollup's size */
  private span = 1;

  constructor(
    private readonly source: TotalsSource,
    opts: CacheOptions = {},
  ) {
    this.maxFilters = opts.maxFilters ?? 16;
    this.sliceMs = opts.sliceMs ?? 3;
    this.pause = opts.pause ?? (() => new Promise<void>((r) => setImmediate(r)));
    this.clock = opts.clock ?? (() => performance.now());
  }

  /** The same rows as `source.edgeTotalsRaw(q)` (in key order), the settled minutes' sums taken from the cache. Treat them as read-only. */
  async totals(q: EdgeTotalsQuery, nowMs: number): Promise<RawEdgeTotals[]> {
    const { fromMinute, toMinute, ...filter } = q;
    const from = Math.max(fromMinute, this.source.rollupFloorMinute());
    const settledTo = Math.min(toMinute, Math.floor(nowMs / 60_000) - LIVE_MINUTES);
    let settled: readonly RawEdgeTotals[] = [];
    if (from <= settledTo) {
      const key = JSON.stringify(filter);
      settled = await this.queue.run(key, () => this.settled(key, filter, from, settledTo));
    }
    // the live minutes one read each, the event loop let go between (all at once past a few: a window in the future)
    let rows = [...settled];
    const liveFrom = Math.max(from, settledTo + 1);
    for (let m = liveFrom; m <= toMinute; m++) {
      const last = toMinute - m >= LIVE_MINUTES ? toMinute : m;
      if (m > liveFrom) await this.pause();
      rows = mergeSorted(rows, inOrder(this.source.edgeTotalsRaw({ ...filter, fromMinute: m, toMinute: last })));
      m = last;
    }
    return rows;
  }

  /** The sums of `filter` over [from, to] (settled minutes) in key order, made from the kept ones where it can. */
  private async settled(key: string, filter: Filter, from: number, to: number): Promise<readonly RawEdgeTotals[]> {
    const late = this.source.lateRollupWrites();
    let e = this.entries.get(key);
    // pruned minutes cannot be read to be taken away: sums holding one are made again
    const usable = e !== undefined && e.late === late && e.from >= this.source.rollupFloorMinute() && e.to >= from && e.from <= to;
    const steps = usable ? Math.abs(from - e!.from) + Math.abs(to - e!.to) : Infinity;
    if (e === undefined || steps >= to - from + 1) e = { from, to: from - 1, late, rows: new Map() };
    this.entries.delete(key);
    this.entries.set(key, e);
    while (this.entries.size > this.maxFilters) this.entries.delete(this.entries.keys().next().value!);
    if (from !== e.from || to !== e.to) e.sorted = undefined;
    // the lost minutes first, then the gained ones: the sums never hold a minute twice
    await this.apply(e.rows, filter, e.from, Math.min(from, e.to + 1) - 1, -1);
    await this.apply(e.rows, filter, Math.max(to, e.from - 1) + 1, e.to, -1);
    await this.apply(e.rows, filter, from, Math.min(to, e.from - 1), 1);
    await this.apply(e.rows, filter, Math.max(from, e.to + 1), to, 1);
    e.from = from;
    e.to = to;
    if (this.source.lateRollupWrites() !== late) e.late = -1; // changed while read: made again next time
    // handed out as they are: a later change replaces arrays (addRows) and makes a new sorted list
    e.sorted ??= [...e.rows.values()].sort(byKey);
    return e.sorted;
  }

  /** Add (sign 1) or take away (-1) the minutes [a, b], a few at a time. */
  private async apply(rows: Sums, filter: Filter, a: number, b: number, sign: 1 | -1): Promise<void> {
    for (let m = a; m <= b; ) {
      const last = Math.min(b, m + this.span - 1);
      const t0 = this.clock();
      addRows(rows, this.source.edgeTotalsRaw({ ...filter, fromMinute: m, toMinute: last }), sign);
      const took = this.clock() - t0;
      if (took < this.sliceMs / 2) this.span = Math.min(this.span * 2, 240);
      else if (took > this.sliceMs * 2) this.span = Math.max(1, this.span >> 1);
      m = last + 1;
      await this.pause();
    }
  }
}
