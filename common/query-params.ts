/**
 * Query string values of the collector's API, checked: each bad value is one
 * PALISADE_ERR_INVALID_ARGUMENT line naming the parameter (the flow filters of flows-api.ts and
 * the control endpoints use these).
 */
import { invalidArgument, quoteValue, type PalisadeError } from './errors';

/** `invalid <param>: <message>`. */
export function invalidParameter(param: string, message: string): PalisadeError {
  return invalidArgument(`invalid ${param}: ${message}`);
}

/** `v` if it is one of `allowed`, else a one-line INVALID_ARGUMENT naming `param` (every API query uses these). */
export function oneOf<T extends string>(param: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw invalidParameter(param, `${quoteValue(v)} is not one of ${allowed.join(', ')}`);
  return v as T;
}

/** `v` as a whole number ≥ `min`, else a one-line INVALID_ARGUMENT naming `param`. */
export function whole(param: string, v: string, min: number): number {
  const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw invalidParameter(param, `${quoteValue(v)} is not ${min > 0 ? 'a positive' : 'a non-negative'} whole number`);
  }
  return n;
}
