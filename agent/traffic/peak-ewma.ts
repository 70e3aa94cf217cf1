/**
 * Per-request endpoint choice: power of two choices over peak-EWMA latency, as Linkerd balances
 * (default RTT 30 ms for an endpoint never measured, decay 10 s). An endpoint's cost is its
 * latency estimate times (outstanding requests + 1); a slower sample replaces the estimate at
 * once (the peak), otherwise the estimate decays towards the samples and, between them, towards
 * 0 (so an endpoint that was slow once is tried again): estimate·d + sample·(1 − d) with
 * d = exp(−elapsed / decay), as tower's PeakEwma that Linkerd uses. An endpoint never measured
 * starts at the default estimate when first seen and decays from then like any other, as tower's
 * does: a fast measured endpoint wins at first, and under sequential load the new one is still
 * tried within about decay · ln(30 ms / the fast one's latency) (34 s against 1 ms). One instance per
 * node proxy: every client pod's requests feed it. Pure except for the random source and clock
 * it is given.
 */

export const DEFAULT_RTT_MS = 30;
export const DECAY_MS = 10_000;
/** Endpoints not seen for this long are forgotten (bounds memory under endpoint churn). */
const FORGET_MS = 5 * 60_000;
/** At most this many endpoints are remembered: past it the least recently seen idle one is forgotten (counted). */
export const MAX_ENDPOINTS = 16_384;
/** Forgetting is looked at once per this many ends (it stops at the first endpoint seen recently). */
const SWEEP_EVERY = 256;

interface Stats {
  ewma: number;
  pending: number;
  stamp: number;
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
    return s.ewma * Math.exp(-Math.max(0, this.now() - s.stamp) / DECAY_MS) * (s.pending + 1);
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
    return this.cost(candidates[j]!) < this.cost(candidates[i]!) ? j : i;
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

  /** A request to `key` ended after `ms` (its latency to the response head, or to the failure). */
  end(key: string, ms: number): void {
    const s = this.entry(key);
    if (s.pending > 0) s.pending--;
    const now = this.now();
    const d = Math.exp(-Math.max(0, now - s.stamp) / DECAY_MS);
    s.ewma = ms > s.ewma ? ms : s.ewma * d + ms * (1 - d);
    s.stamp = now;
    this.stats.delete(key);
    this.stats.set(key, s);
    if (++this.ends % SWEEP_EVERY === 0) this.sweep(now);
  }

  /** Requests to `key` in progress (LEAST_REQUEST's measure). */
  outstanding(key: string): number {
    return this.stats.get(key)?.pending ?? 0;
  }

  /** endpoints remembered */
  get size(): number {
    return this.stats.size;
  }

  private entry(key: string): Stats {
    let s = this.stats.get(key);
    if (s === undefined) {
      if (this.stats.size >= MAX_ENDPOINTS) this.evictOne();
      s = { ewma: DEFAULT_RTT_MS, pending: 0, stamp: this.now() };
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
