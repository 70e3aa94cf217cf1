/**
 * Per-request endpoint choice: power of two choices over peak-EWMA latency, as Linkerd balances
 * (default RTT 30 ms for an endpoint never measured, decay 10 s). An endpoint's cost is its
 * latency estimate times (outstanding requests + 1). Between answers the estimate decays towards
 * 0 (so an endpoint that was slow once is tried again): estimate · d with d = exp(−elapsed / decay),
 * as tower's PeakEwma that Linkerd uses. An answer then updates the decayed estimate:
 *   - slower than it (the peak): taken at once, but one answer can at most double the estimate
 *     it was last set to — a single outlier (a GC pause) does not set an endpoint's share for the
 *     next 10 s, a slow endpoint is still at its latency within a few answers;
 *   - faster: a weighted mean, the answer's weight 1 − d but at least 1/10, so an endpoint's
 *     estimate follows its answers over seconds, not only its decayed peak;
 *   - the first answer replaces the default (within the same doubling);
 * an attempt that got no answer at all (fail) is a peak at once, unbounded. An endpoint passed over
 * in a pick loses 5 % of its estimate: answers move the estimates of the endpoints that get them
 * within ten answers, so one that gets none (a slow first answer, then not picked) must not keep
 * its stale estimate for the decay's 10 s — it is tried again after a few dozen picks. An endpoint never
 * measured starts at the default estimate when first seen and decays from then like any other, as
 * tower's does: under sequential load a new endpoint is tried within about
 * decay · ln(30 ms / the measured one's latency) (34 s against 1 ms). One instance per node proxy:
 * every client pod's requests feed it. Pure except for the random source and clock it is given.
 */

export const DEFAULT_RTT_MS = 30;
export const DECAY_MS = 10_000;
/** an answer's least weight in the estimate when it is faster (about the last ten answers count) */
export const MIN_WEIGHT = 0.1;
/** one slower answer raises the estimate to at most this times the level it was last set to */
export const MAX_LIFT = 2;
/** an endpoint passed over in a pick loses this share of its estimate (a stale estimate is re-probed) */
export const PASSED_OVER = 0.05;
/** Endpoints not seen for this long are forgotten (bounds memory under endpoint churn). */
const FORGET_MS = 5 * 60_000;
/** At most this many endpoints are remembered: past it the least recently seen idle one is forgotten (counted). */
export const MAX_ENDPOINTS = 16_384;
/** Forgetting is looked at once per this many ends (it stops at the first endpoint seen recently). */
const SWEEP_EVERY = 256;

interface Stats {
  /** the estimate as last set (at `stamp`), before the decay since */
  ewma: number;
  pending: number;
  stamp: number;
  /** an answer has set the estimate (the default no longer counts) */
  measured: boolean;
}

export class PeakEwma {
  /** in the order they were last stamped (seen first, or a sample), least recent first */
  private readonly stats = new Map<string, Stats>();
  private ends = 0;
  /** endpoints forgotten before their time to stay within MAX_ENDPOINTS */
  evicted = 0;

  constructor(
    private readonly random: () => number = Math.random,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The cost of sending one more request to `key` now (first seen: the default estimate, from now). */
  cost(key: string): number {
    const s = this.entry(key);
    return s.ewma * this.decay(s, this.now()) * (s.pending + 1);
  }

  /**
   * Two endpoints drawn at random among `candidates` (keys), the cheaper one chosen; undefined
   * when there are none.
   */
  pick(candidates: readonly string[]): string | undefined {
    const i = this.pickIndex(candidates);
    return i === undefined ? undefined : candidates[i];
  }

  /** pick() as the index in `candidates`. */
  pickIndex(candidates: readonly string[]): number | undefined {
    const n = candidates.length;
    if (n === 0) return undefined;
    if (n === 1) return 0;
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const chosen = this.cost(candidates[j]!) < this.cost(candidates[i]!) ? j : i;
    const other = this.stats.get(candidates[chosen === i ? j : i]!)!;
    if (other.measured) other.ewma *= 1 - PASSED_OVER;
    return chosen;
  }

  /** A request to `key` starts. */
  start(key: string): void {
    const s = this.entry(key);
    s.pending++;
  }

  /** A request to `key` ended without telling anything of its latency (the destination refused it). */
  cancel(key: string): void {
    const s = this.stats.get(key);
    if (s !== undefined && s.pending > 0) s.pending--;
  }

  /** A request to `key` ended after `ms` (its latency to the response head). */
  end(key: string, ms: number): void {
    this.sample(key, ms, false);
  }

  /** An attempt to `key` got no answer (refused, reset, timed out) after `ms`: a peak taken whole. */
  fail(key: string, ms: number): void {
    this.sample(key, ms, true);
  }

  /** Requests to `key` in progress (LEAST_REQUEST's measure). */
  outstanding(key: string): number {
    return this.stats.get(key)?.pending ?? 0;
  }

  /** endpoints remembered */
  get size(): number {
    return this.stats.size;
  }

  private sample(key: string, ms: number, failed: boolean): void {
    const s = this.entry(key);
    if (s.pending > 0) s.pending--;
    const now = this.now();
    const d = this.decay(s, now);
    const current = s.ewma * d;
    if (failed) s.ewma = Math.max(current, ms);
    else if (!s.measured || ms > current) s.ewma = Math.max(s.measured ? current : 0, Math.min(ms, s.ewma * MAX_LIFT));
    else {
      const w = Math.max(MIN_WEIGHT, 1 - d);
      s.ewma = current * (1 - w) + ms * w;
    }
    s.measured = true;
    s.stamp = now;
    this.stats.delete(key);
    this.stats.set(key, s);
    if (++this.ends % SWEEP_EVERY === 0) this.sweep(now);
  }

  private decay(s: Stats, now: number): number {
    return Math.exp(-Math.max(0, now - s.stamp) / DECAY_MS);
  }

  private entry(key: string): Stats {
    let s = this.stats.get(key);
    if (s === undefined) {
      if (this.stats.size >= MAX_ENDPOINTS) this.evictOne();
      s = { ewma: DEFAULT_RTT_MS, pending: 0, stamp: this.now(), measured: false };
      this.stats.set(key, s);
    }
    return s;
  }

  /** Forget the endpoints idle for FORGET_MS: the least recent come first, so it stops at the first recent one. */
  private sweep(now: number): void {
    for (const [k, s] of this.stats) {
      if (now - s.stamp <= FORGET_MS) return;
      if (s.pending === 0) this.stats.delete(k);
    }
  }

  private evictOne(): void {
    for (const [k, s] of this.stats) {
      if (s.pending > 0) continue;
      this.stats.delete(k);
      this.evicted++;
      return;
    }
  }
}
