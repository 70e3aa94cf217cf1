/**
 * The dashboard API's query parameters, checked once at the boundary: unknown, repeated, empty
 * or malformed parameters are one PALISADE_ERR_INVALID_ARGUMENT line naming the parameter.
 */
import { invalidArgument, quoteValue } from '../../common/errors';
import { whole } from '../../common/query-params';
import { parseNodeId } from './graph';
import type { MapEndpoint } from '../flows/rollup-query';

const VERDICTS = new Set(['allowed', 'denied', 'audit', 'error']);
const PROTOCOLS = new Set(['tcp', 'tls', 'http']);
const MAX_LIST = 50;
/** The longest window the map reads: the rollup keeps 48 h, the page offers 24 h. */
export const MAX_WINDOW_MS = 48 * 3_600_000;

export function params(route: string, q: URLSearchParams, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of q) {
    if (!allowed.includes(k)) throw invalidArgument(`invalid parameter: ${route} takes ${allowed.join(', ')}, not ${quoteValue(k.slice(0, 64))}`);
    if (out.has(k)) throw invalidArgument(`invalid ${k}: given more than once`);
    if (v.length === 0 || v.length > 4096) throw invalidArgument(`invalid ${k}: empty or too long`);
    out.set(k, v);
  }
  return out;
}

/** A comma-separated list of at most 50 values, each in `known` when given. */
export function list(name: string, v: string | undefined, known?: ReadonlySet<string>): string[] | undefined {
  if (v === undefined) return undefined;
  const items = v.split(',');
  if (items.length > MAX_LIST) throw invalidArgument(`invalid ${name}: at most ${MAX_LIST} values`);
  for (const i of items) {
    if (i.length === 0 || i.length > 253) throw invalidArgument(`invalid ${name}: an empty or too long value`);
    if (known && !known.has(i)) throw invalidArgument(`invalid ${name}: ${quoteValue(i.slice(0, 64))} is not one of ${[...known].join(', ')}`);
  }
  return items;
}

export const verdicts = (v: string | undefined): string[] | undefined => list('verdicts', v, VERDICTS);
export const protocols = (v: string | undefined): string[] | undefined => list('protocols', v, PROTOCOLS);

/** `since` and `until` (epoch ms): until after since, at most MAX_WINDOW_MS apart; until defaults to now. */
export function window(p: Map<string, string>, now: number): { since: number; until: number } {
  const until = p.has('until') ? whole('until', p.get('until')!, 1) : now;
  if (!p.has('since')) throw invalidArgument('invalid request: since is required (epoch milliseconds)');
  const since = whole('since', p.get('since')!, 0);
  if (since >= until) throw invalidArgument('invalid since: must be before until');
  if (until - since > MAX_WINDOW_MS) throw invalidArgument(`invalid since: the window is at most ${MAX_WINDOW_MS / 3_600_000} h`);
  return { since, until };
}

/** A node id of the map (graph.ts nodeId). */
export function endpoint(name: string, v: string | undefined): MapEndpoint | undefined {
  if (v === undefined) return undefined;
  const e = parseNodeId(v);
  if (!e) throw invalidArgument(`invalid ${name}: ${quoteValue(v.slice(0, 64))} is not a node of the map (w:ns/name, ip:ADDRESS, host:NAME)`);
  return e;
}

/** `ns/name` or `name`. */
export function workload(v: string | undefined): { namespace?: string; name: string } | undefined {
  if (v === undefined) return undefined;
  if (v.length > 253) throw invalidArgument('invalid workload: too long');
  const slash = v.indexOf('/');
  if (slash < 0) return { name: v };
  if (slash === 0 || slash === v.length - 1) throw invalidArgument('invalid workload: give namespace/name or name');
  return { namespace: v.slice(0, slash), name: v.slice(slash + 1) };
}

export function bool(name: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw invalidArgument(`invalid ${name}: use true or false`);
}
