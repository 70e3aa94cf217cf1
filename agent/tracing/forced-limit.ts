/**
 * How many hops a tracer exports that its own sampling did not choose: those a client marked
 * sampled (`traceparent …-01`, `X-B3-Sampled: 1`), and denied and 5xx ones. Istio's proxies
 * follow the client's flag too, but unbounded that lets one client make every request exported
 * (proxy CPU, and the export queue crowded out of everyone else's spans). Token buckets, per
 * source (its identity, else its address) and for the node, refill at their rate per second up to
 * a second's worth; a hop over either is not exported (counted by the tracer).
 */
export interface ForcedLimitOptions {
  /** hops per second one source may force; default 100 */
  perSource?: number;
  /** hops per second all sources together may force; default 1000 */
  total?: number;
  /** sources tracked at most (more: the table starts over); default 4096 */
  maxSources?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export const DEFAULT_FORCED_PER_SOURCE = 100;
export const DEFAULT_FORCED_TOTAL = 1000;

export class ForcedLimit {
  private readonly perSource: number;
  private readonly total: number;
  private readonly maxSources: number;
  private readonly now: () => number;
  private readonly sources = new Map<string, Bucket>();
  private readonly node: Bucket;

  constructor(opts: ForcedLimitOptions = {}) {
    this.perSource = opts.perSource ?? DEFAULT_FORCED_PER_SOURCE;
    this.total = opts.total ?? DEFAULT_FORCED_TOTAL;
    this.maxSources = opts.maxSources ?? 4096;
    this.now = opts.now ?? Date.now;
    this.node = { tokens: this.total, at: this.now() };
  }

  /** Whether `source` may force one more hop now (a token of its bucket and the node's is taken). */
  take(source: string): boolean {
    const now = this.now();
    let b = this.sources.get(source);
    if (b === undefined) {
      if (this.sources.size >= this.maxSources) this.sources.clear();
      b = { tokens: this.perSource, at: now };
      this.sources.set(source, b);
    }
    refill(b, this.perSource, now);
    refill(this.node, this.total, now);
    if (b.tokens < 1 || this.node.tokens < 1) return false;
    b.tokens--;
    this.node.tokens--;
    return true;
  }
}

function refill(b: Bucket, rate: number, now: number): void {
  if (now <= b.at) return;
  b.tokens = Math.min(rate, b.tokens + ((now - b.at) * rate) / 1000);
  b.at = now;
}
