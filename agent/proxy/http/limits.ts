/** Size and time limits of the HTTP/1.1 front, per downstream connection. */

export interface HttpLimits {
  /** Request line plus header section, in bytes; over it → 431. */
  maxHeaderBytes: number;
  /** Header lines per request; over it → 431 (never silently dropped). */
  maxHeaders: number;
  /** From the first byte of a request (or the connection's start) to the end of its headers; then 408. */
  headersTimeoutMs: number;
  /** From the first byte of a request to the last byte of its body; then 408. */
  requestTimeoutMs: number;
  /** Between keep-alive requests; then the connection is closed. */
  idleTimeoutMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  maxHeaderBytes: 16384,
  maxHeaders: 100,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 300_000,
});

/** Defaults overlaid with the caller's values; every limit must be a positive integer. */
export function resolveLimits(partial: Partial<HttpLimits> | undefined): HttpLimits {
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...partial };
  for (const key of Object.keys(DEFAULT_HTTP_LIMITS) as Array<keyof HttpLimits>) {
    const v = limits[key];
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`HTTP limit ${key} must be a positive integer, got ${String(v)}`);
  }
  return limits;
}
