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

interface Stats {
  ewma: number;
  pending: number;
  stamp: number;
}

export class PeakEwma {
  private readonly stats = new Map<string, Stats>();

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
    const n = candidates.length;
    if (n === 0) return undefined;
    if (n === 1) return candidates[0];
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = candidates[i]!;
    const b = candidates[j]!;
    return this.cost(b) < this.cost(a) ? b : a;
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
    if (this.stats.size > 4096) this.sweep(now);
  }

  private entry(key: string): Stats {
    let s = this.stats.get(key);
    if (s === undefined) {
      s = { ewma: DEFAULT_RTT_MS, pending: 0, stamp: this.now() };
      this.stats.set(key, s);
    }
    return s;
  }

  private sweep(now: number): void {
    for (const [k, s] of this.stats) if (s.pending === 0 && now - s.stamp > FORGET_MS) this.stats.delete(k);
  }
}
