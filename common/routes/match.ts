/**
 * Which rule of the routes attached to a Service serves a request, by Gateway API's precedence
 * among all matches of all rules: an Exact path, then the longest PathPrefix (a regex path after
 * them, longest pattern first), then a method, then the most headers, then the most query
 * params (GRPCRoutes among themselves: the longest exact service, then method, then the most
 * headers); ties go to the route created first (here: by namespace/name) and then rule order.
 * Pure; the ranking is computed once per route set (RouteTable).
 */
import type { CompiledRoute, PathMatcher, RouteMatch, RouteRequest, RouteRule, StringMatcher } from './types';

export interface RuleChoice {
  readonly route: CompiledRoute;
  readonly rule: RouteRule;
}

interface Ranked {
  readonly route: CompiledRoute;
  readonly rule: RouteRule;
  readonly match: RouteMatch;
}

/** The (route, rule, match) triples in the order they are tried. */
export function rankMatches(routes: readonly CompiledRoute[]): Ranked[] {
  const all: (Ranked & { order: number })[] = [];
  const sorted = [...routes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  let order = 0;
  for (const route of sorted) for (const rule of route.rules) for (const match of rule.matches) all.push({ route, rule, match, order: order++ });
  all.sort((a, b) => compareSpecificity(a.match, b.match) || a.order - b.order);
  return all;
}

function pathRank(p: PathMatcher): [number, number] {
  if (p.type === 'Exact') return [3, p.value.length];
  if (p.type === 'PathPrefix') return [2, p.value.length];
  return [1, p.value.length];
}

/** < 0 when `a` is more specific (tried first). */
function compareSpecificity(a: RouteMatch, b: RouteMatch): number {
  // GRPCRoute's own order: the longest service, then the longest method, then the most headers
  if (a.grpc !== undefined && b.grpc !== undefined) {
    return b.grpc.service - a.grpc.service || b.grpc.method - a.grpc.method || b.headers.length - a.headers.length;
  }
  const [ta, la] = pathRank(a.path);
  const [tb, lb] = pathRank(b.path);
  if (ta !== tb) return tb - ta;
  if (la !== lb) return lb - la;
  const ma = a.method ? 1 : 0;
  const mb = b.method ? 1 : 0;
  if (ma !== mb) return mb - ma;
  if (a.headers.length !== b.headers.length) return b.headers.length - a.headers.length;
  return b.queryParams.length - a.queryParams.length;
}

export function firstMatch(ranked: readonly Ranked[], req: RouteRequest): RuleChoice | undefined {
  let params: URLSearchParams | undefined;
  for (const r of ranked) {
    const m = r.match;
    if (m.method !== undefined && m.method !== req.method) continue;
    if (!pathMatches(m.path, req.path)) continue;
    if (!m.headers.every((h) => req.headers[h.name]?.some((v) => stringMatches(h.match, v)) === true)) continue;
    if (m.queryParams.length > 0) {
      params ??= new URLSearchParams(req.query.startsWith('?') ? req.query.slice(1) : req.query);
      const p = params;
      // the first value of a repeated parameter, as Gateway API asks
      if (!m.queryParams.every((q) => { const v = p.get(q.name); return v !== null && stringMatches(q.match, v); })) continue;
    }
    return { route: r.route, rule: r.rule };
  }
  return undefined;
}

/**
 * The rule every request matches whatever it carries (a match on PathPrefix `/` and nothing else),
 * first in precedence: what a connection that is not HTTP (TLS, another protocol) is routed by.
 */
export function catchAll(ranked: readonly Ranked[]): RuleChoice | undefined {
  const r = ranked.find(({ match: m }) => m.path.type === 'PathPrefix' && m.path.value === '/' && m.method === undefined && m.headers.length === 0 && m.queryParams.length === 0);
  return r && { route: r.route, rule: r.rule };
}

export function pathMatches(p: PathMatcher, path: string): boolean {
  if (p.type === 'Exact') return path === p.value;
  if (p.type === 'RegularExpression') return p.re!.test(path);
  if (p.value === '/') return true;
  return path === p.value || (path.startsWith(p.value) && path.charCodeAt(p.value.length) === 47 /* / */);
}

function stringMatches(m: StringMatcher, v: string): boolean {
  return m.type === 'Exact' ? m.value === v : m.re.test(v);
}
