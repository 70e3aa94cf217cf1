/**
 * Durations as operators type them on the command line: `30s`, `10m`, `24h`, `30d`, `500ms`,
 * or several of those run together (`1h30m`). Whole numbers only; no spaces, no signs, no
 * fractions, lowercase units. Everything else is refused with a one-line error.
 */
import { invalidArgument, PalisadeError } from './errors';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const WHOLE_RE = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART_RE = /(\d+)(ms|s|m|h|d)/g;
const MAX_TEXT_LENGTH = 64;

/** Milliseconds in `text`; throws PALISADE_ERR_INVALID_ARGUMENT naming `what` (e.g. `--ttl`). */
export function parseDuration(text: string, what = 'duration'): number {
  const invalid = (): PalisadeError =>
    invalidArgument(`invalid ${what} ${JSON.stringify(String(text).slice(0, MAX_TEXT_LENGTH))}: expected a duration like 30s, 10m, 24h or 30d`);
  if (typeof text !== 'string' || text.length > MAX_TEXT_LENGTH || !WHOLE_RE.test(text)) throw invalid();
  let total = 0;
  for (const [, digits, unit] of text.matchAll(PART_RE)) {
    total += Number(digits) * UNIT_MS[unit];
  }
  if (!Number.isSafeInteger(total)) throw invalid();
  return total;
}

/** `parseDuration` that also refuses zero (TTLs, intervals). */
export function parsePositiveDuration(text: string, what = 'duration'): number {
  const ms = parseDuration(text, what);
  if (ms <= 0) {
    throw invalidArgument(`invalid ${what} ${JSON.stringify(text)}: must be more than zero`);
  }
  return ms;
}

/** The shortest exact rendering in the same syntax (`90000` → `1m30s`, `0` → `0s`). */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`not a duration in ms: ${ms}`);
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms']) {
    const n = Math.floor(rest / UNIT_MS[unit]);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * UNIT_MS[unit];
    }
  }
  return out;
}
