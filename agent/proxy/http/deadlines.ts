/**
 * The timers of a dispatched request (types.ts Dispatch): the whole request's deadline, the
 * current attempt's, and an injected delay before the first attempt; each one timer, all cleared
 * when the exchange ends (an abandoned delayed request is not kept for the rest of its delay).
 */
export class Deadlines {
  private request: NodeJS.Timeout | undefined;
  private attempt: NodeJS.Timeout | undefined;
  private delay: NodeJS.Timeout | undefined;

  constructor(
    private readonly onRequest: () => void,
    private readonly onAttempt: () => void,
  ) {}

  startRequest(ms: number): void {
    if (ms > 0) this.request = setTimeout(this.onRequest, ms);
  }

  startAttempt(ms: number): void {
    this.endAttempt();
    if (ms > 0) this.attempt = setTimeout(this.onAttempt, ms);
  }

  /** `then` after `ms` (an injected delay), unless the exchange ends first. */
  startDelay(ms: number, then: () => void): void {
    this.delay = setTimeout(() => {
      this.delay = undefined;
      then();
    }, ms);
  }

  endAttempt(): void {
    if (this.attempt !== undefined) clearTimeout(this.attempt);
    this.attempt = undefined;
  }

  clear(): void {
    this.endAttempt();
    if (this.request !== undefined) clearTimeout(this.request);
    if (this.delay !== undefined) clearTimeout(this.delay);
    this.request = undefined;
    this.delay = undefined;
  }
}
