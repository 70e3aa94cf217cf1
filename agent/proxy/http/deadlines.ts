/**
 * The two deadlines of a dispatched request (types.ts Dispatch): the whole request's and the
 * current attempt's, each one timer, cleared when the exchange ends.
 */
export class Deadlines {
  private request: NodeJS.Timeout | undefined;
  private attempt: NodeJS.Timeout | undefined;

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

  endAttempt(): void {
    if (this.attempt !== undefined) clearTimeout(this.attempt);
    this.attempt = undefined;
  }

  clear(): void {
    this.endAttempt();
    if (this.request !== undefined) clearTimeout(this.request);
    this.request = undefined;
  }
}
