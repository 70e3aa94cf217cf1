/**
 * A Gateway API duration (GEP-2257: one to four parts of 1–5 digits with h, m, s or ms, e.g. 500ms,
 * 10s, 1m30s) in ms, bounded: a timer past 2^31−1 ms (about 24.8 days) would fire after 1 ms in
 * Node, so a long value meant as "effectively none" must be refused, not turned into an outage.
 * Pure; a problem is one line naming the limit.
 */

const DURATION_RE = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Route timeouts (timeouts.request, timeouts.backendRequest): at most a day. */
export const MAX_ROUTE_TIMEOUT_MS = 24 * 3_600_000;
/** A FaultInjection's fixedDelay: at most an hour (a delayed request holds its exchange meanwhile). */
export const MAX_FAULT_DELAY_MS = 3_600_000;

const show = (v: unknown): string => JSON.stringify(v)?.slice(0, 80) ?? String(v);

/** `v` in ms, or why not: not a duration (`example` shows one), or longer than `maxMs` (`maxText`). */
export function routeDuration(v: unknown, example: string, maxMs: number, maxText: string): { ms: number } | { problem: string } {
  if (typeof v !== 'string' || !DURATION_RE.test(v)) return { problem: `must be a duration like ${example}, got ${show(v)}` };
  let ms = 0;
  for (const [, n, unit] of v.matchAll(/([0-9]+)(ms|h|m|s)/g)) ms += Number(n) * UNIT_MS[unit!]!;
  if (ms > maxMs) return { problem: `must be at most ${maxText}, got ${show(v)}` };
  return { ms };
}
