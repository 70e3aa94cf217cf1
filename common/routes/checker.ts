/**
 * The route parsers' checker (HTTPRoute, GRPCRoute, their filters and sessionPersistence,
 * DestinationRule): every problem is `{path, message}`, collected, never thrown. Pure.
 */
import { regexProblem, wholeMatch } from './regex-check';
import { MAX_ROUTE_TIMEOUT_MS, routeDuration } from './route-duration';

export interface RouteProblem {
  path: string;
  message: string;
}

const NOT_YET: Record<string, string> = {
  sectionName: 'sectionName is not supported for a Service parent (use port)',
};
const NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const show = (v: unknown): string => JSON.stringify(v)?.slice(0, 80) ?? String(v);

export class Checker {
  readonly problems: RouteProblem[] = [];
  readonly warnings: RouteProblem[] = [];

  fail(path: string, message: string): undefined {
    this.problems.push({ path, message });
    return undefined;
  }

  /** `v` as an object with only `allowed` keys (keys of `why`, NOT_YET by default, get their own line). */
  fields(v: unknown, path: string, allowed: readonly string[], why: Readonly<Record<string, string>> = NOT_YET): Obj | undefined {
    if (!isObj(v)) return this.fail(path, `must be a mapping, got ${show(v)}`);
    let ok = true;
    for (const key of Object.keys(v)) {
      if (allowed.includes(key)) continue;
      ok = false;
      this.fail(`${path}.${key}`, why[key] ?? `unknown or unsupported field (supported here: ${allowed.join(', ')})`);
    }
    return ok ? v : undefined;
  }

  list(v: unknown, path: string, max: number): unknown[] | undefined {
    if (!Array.isArray(v)) return this.fail(path, `must be a list, got ${show(v)}`);
    if (v.length > max) return this.fail(path, `has ${v.length} entries, at most ${max} are allowed`);
    return v;
  }

  string(v: unknown, path: string): string | undefined {
    if (typeof v !== 'string' || v.length === 0) return this.fail(path, `must be a non-empty string, got ${show(v)}`);
    return v;
  }

  int(v: unknown, path: string, min: number, max: number): number | undefined {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return this.fail(path, `must be a whole number from ${min} to ${max}, got ${show(v)}`);
    return v;
  }

  name(v: unknown, path: string): string | undefined {
    const s = this.string(v, path);
    if (s !== undefined && !NAME_RE.test(s)) return this.fail(path, `must be a DNS-1123 label, got ${show(s)}`);
    return s;
  }

  /** A Gateway API duration (GEP-2257) in ms, at most a day. */
  duration(v: unknown, path: string): number | undefined {
    const d = routeDuration(v, '500ms, 10s or 1m30s', MAX_ROUTE_TIMEOUT_MS, '24h (for no timeout, leave it out)');
    return 'ms' in d ? d.ms : this.fail(path, d.problem);
  }

  regex(v: string, path: string): RegExp | undefined {
    const problem = regexProblem(v);
    return problem ? this.fail(path, `regular expression ${problem}`) : wholeMatch(v);
  }
}
