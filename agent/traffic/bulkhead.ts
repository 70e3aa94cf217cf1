/**
 * A DestinationRule's connectionPool as a bulkhead, one per Service port on this node (every
 * client pod's requests count together, as one Envoy's circuit breakers do per cluster): at most
 * `maxActive` requests in progress; past that a request waits its turn, up to `maxPending`
 * waiting; past that, or after waiting `maxWaitMs`, it is refused (the proxy answers 503 /
 * gRPC UNAVAILABLE with response flag UO). Retries in progress are bounded alike (maxRetries).
 * Limits are given per call: a changed rule applies to the next request.
 */

export interface BulkheadLimits {
  readonly maxActive: number;
  readonly maxPending: number;
  readonly maxRetries: number;
}

/** A place: its release (idempotent), or undefined when refused. */
export type Release = () => void;

export type Admission = { readonly kind: 'now'; readonly release: Release } | { readonly kind: 'queued'; readonly ready: Promise<Release | undefined> } | { readonly kind: 'overflow' };

interface Waiter {
  readonly limits: BulkheadLimits;
  readonly resolve: (r: Release | undefined) => void;
  timer: NodeJS.Timeout | undefined;
}

export class Bulkhead {
  private active = 0;
  private retries = 0;
  private readonly waiting: Waiter[] = [];
  /** refused for want of room, waited too long included */
  overflowed = 0;

  constructor(private readonly maxWaitMs: number) {}

  get inProgress(): number {
    return this.active;
  }

  get pending(): number {
    return this.waiting.length;
  }

  admit(limits: BulkheadLimits): Admission {
    if (this.active < limits.maxActive && this.waiting.length === 0) return { kind: 'now', release: this.take() };
    if (this.waiting.length >= limits.maxPending) {
      this.overflowed++;
      return { kind: 'overflow' };
    }
    const ready = new Promise<Release | undefined>((resolve) => {
      const w: Waiter = { limits, resolve, timer: undefined };
      w.timer = setTimeout(() => {
        const i = this.waiting.indexOf(w);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        this.overflowed++;
        resolve(undefined);
      }, this.maxWaitMs);
      w.timer.unref();
      this.waiting.push(w);
    });
    return { kind: 'queued', ready };
  }

  /** A retry may start (its place is given back by the release). */
  tryRetry(limits: BulkheadLimits): Release | undefined {
    if (this.retries >= limits.maxRetries) return undefined;
    this.retries++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.retries--;
    };
  }

  private take(): Release {
    this.active++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.next();
    };
  }

  /** Room again: the first waiter (by its own limits) gets it. */
  private next(): void {
    const w = this.waiting[0];
    if (w === undefined || this.active >= w.limits.maxActive) return;
    this.waiting.shift();
    if (w.timer !== undefined) clearTimeout(w.timer);
    w.resolve(this.take());
  }
}
