/**
 * Retries are capped by a budget, as Linkerd's: over the last 10 s, retries may add 20 % to the
 * requests, and at least 10 retries a second are always allowed. Counted in one-second buckets.
 * One budget per node proxy and service. Pure but for the clock it is given.
 */

export const RETRY_RATIO = 0.2;
export const MIN_RETRIES_PER_SECOND = 10;
export const WINDOW_S = 10;

export class RetryBudget {
  private readonly requests = new Array<number>(WINDOW_S).fill(0);
  private readonly retries = new Array<number>(WINDOW_S).fill(0);
  private second = 0;
  /** retries refused by the budget, in all */
  refused = 0;

  constructor(private readonly now: () => number = () => Date.now()) {}

  /** A request (its first attempt) starts. */
  request(): void {
    this.advance();
    this.requests[this.second % WINDOW_S]!++;
  }

  /** Whether one more retry fits; if it does, it is counted. */
  tryRetry(): boolean {
    this.advance();
    const requests = this.requests.reduce((a, b) => a + b, 0);
    const retries = this.retries.reduce((a, b) => a + b, 0);
    if (retries + 1 > RETRY_RATIO * requests + MIN_RETRIES_PER_SECOND * WINDOW_S) {
      this.refused++;
      return false;
    }
    this.retries[this.second % WINDOW_S]!++;
    return true;
  }

  private advance(): void {
    const s = Math.floor(this.now() / 1000);
    if (this.second === 0) this.second = s;
    while (this.second < s) {
      this.second++;
      this.requests[this.second % WINDOW_S] = 0;
      this.retries[this.second % WINDOW_S] = 0;
      if (s - this.second >= WINDOW_S) this.second = s - WINDOW_S;
    }
  }
}
