/**
 * `spec` of a Gateway API HTTPRoute (gateway.networking.k8s.io/v1) attached to Services, checked
 * whole and compiled. Works on the spec as plain data; every problem is `{path, message}`, the
 * caller adds the file and line. Pure.
 *
 * Supported: parentRefs (kind Service, optional port), rules[].matches (path Exact / PathPrefix /
 * RegularExpression, headers and queryParams Exact / RegularExpression, method),
 * rules[].backendRefs (Services of the route's namespace, port, weight, filters), rules[].timeouts
 * (request, backendRequest), rules[].retry (codes, attempts, backoff: the experimental channel's
 * fields), rules[].filters (parse-filters.ts), rules[].name, rules[].sessionPersistence (parse-session.ts).
 * Everything else (Gateway parents, cross-namespace backends, CORS and ExternalAuth filters) is refused naming the
 * field. `hostnames` is ignored for Service parents, as the mesh profile says (a warning).
 */
import { Checker, show, type Obj, type RouteProblem } from './checker';
import { parseFilters, type RouteKind } from './parse-filters';
import { parseSession } from './parse-session';
import type { BackendRef, PathMatcher, RetryPolicy, RouteMatch, RouteParent, RouteRule, StringMatcher } from './types';

export { Checker, type RouteProblem } from './checker';


export interface ParsedHttpRouteSpec {
  parents: RouteParent[];
  rules: RouteRule[];
}

const SPEC_FIELDS = ['parentRefs', 'hostnames', 'rules'];
const PARENT_FIELDS = ['group', 'kind', 'name', 'namespace', 'port'];
const RULE_FIELDS = ['name', 'matches', 'backendRefs', 'timeouts', 'retry', 'filters', 'sessionPersistence'];
const MATCH_FIELDS = ['path', 'headers', 'queryParams', 'method'];
const BACKEND_FIELDS = ['group', 'kind', 'name', 'namespace', 'port', 'weight', 'filters'];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/;
export const LIMITS = { parentRefs: 32, rules: 16, matches: 64, headers: 16, queryParams: 16, backendRefs: 16, codes: 100 };
const MAX_WEIGHT = 1_000_000;
const MAX_ATTEMPTS = 10;
export const DEFAULT_RETRY_CODES: readonly number[] = [502, 503, 504];
export const DEFAULT_RETRY_ATTEMPTS = 2;
export const DEFAULT_BACKOFF_MS = 25;
/** A retry waits from the backoff up to twice it, doubling per retry, at most this (agent/traffic/dispatcher.ts). */
export const MAX_BACKOFF_MS = 250;


export interface HttpRouteSpecResult {
  spec: ParsedHttpRouteSpec | undefined;
  problems: RouteProblem[];
  warnings: RouteProblem[];
}

export function parseHttpRouteSpec(spec: unknown, namespace: string): HttpRouteSpecResult {
  return parseRouteSpec(spec, namespace, 'web', rule);
}

/**
 * A route's spec, HTTPRoute's or GRPCRoute's: parentRefs, hostnames (ignored), and each of the
 * rules by `ruleOf`. `example` names a Service in the hint for missing parentRefs.
 */
export function parseRouteSpec(spec: unknown, namespace: string, example: string, ruleOf: (c: Checker, v: unknown, index: number, namespace: string) => RouteRule | undefined): HttpRouteSpecResult {
  const c = new Checker();
  const top = c.fields(spec, 'spec', SPEC_FIELDS);
  let parents: RouteParent[] = [];
  let rules: RouteRule[] = [];
  if (top) {
    if (top.hostnames !== undefined) c.warnings.push({ path: 'spec.hostnames', message: 'is ignored: a route attached to a Service applies to every name of it (remove it)' });
    if (top.parentRefs === undefined) c.fail('spec.parentRefs', `is missing (attach the route to a Service: parentRefs: [{kind: Service, name: ${example}}])`);
    else parents = (c.list(top.parentRefs, 'spec.parentRefs', LIMITS.parentRefs) ?? []).flatMap((p, i) => parent(c, p, `spec.parentRefs[${i}]`, namespace) ?? []);
    if (Array.isArray(top.parentRefs) && top.parentRefs.length === 0) c.fail('spec.parentRefs', 'is empty (attach the route to a Service)');
    const ruleList = top.rules === undefined ? [{}] : c.list(top.rules, 'spec.rules', LIMITS.rules);
    if (ruleList?.length === 0) c.fail('spec.rules', 'is empty (a route needs at least one rule)');
    rules = (ruleList ?? []).flatMap((r, i) => ruleOf(c, r, i, namespace) ?? []);
  }
  const ok = c.problems.length === 0;
  return { spec: ok ? { parents, rules } : undefined, problems: c.problems, warnings: c.warnings };
}

function parent(c: Checker, v: unknown, path: string, namespace: string): RouteParent | undefined {
  const f = c.fields(v, path, PARENT_FIELDS);
  if (!f) return undefined;
  const kind = f.kind ?? 'Gateway';
  const group = f.group ?? (f.kind === undefined ? 'gateway.networking.k8s.io' : '');
  if (kind !== 'Service' || (group !== '' && group !== 'core')) {
    return c.fail(path, `only a Service parent is supported (kind: Service, group: ""), got kind ${show(kind)} group ${show(group)}: Palisade routes in the source node's proxy, with no gateway`);
  }
  const name = c.name(f.name, `${path}.name`);
  const ns = f.namespace === undefined ? namespace : c.name(f.namespace, `${path}.namespace`);
  const port = f.port === undefined ? undefined : c.int(f.port, `${path}.port`, 1, 65535);
  if (name === undefined || ns === undefined || (f.port !== undefined && port === undefined)) return undefined;
  return { namespace: ns, name, port };
}

function rule(c: Checker, v: unknown, index: number, namespace: string): RouteRule | undefined {
  return parseRule(c, v, index, namespace, 'HTTPRoute', RULE_FIELDS, match, (f, path) => {
    let requestTimeoutMs = 0;
    let backendTimeoutMs = 0;
    const timeouts = f.timeouts === undefined ? undefined : c.fields(f.timeouts, `${path}.timeouts`, ['request', 'backendRequest']);
    if (timeouts) {
      requestTimeoutMs = timeouts.request === undefined ? 0 : (c.duration(timeouts.request, `${path}.timeouts.request`) ?? 0);
      backendTimeoutMs = timeouts.backendRequest === undefined ? 0 : (c.duration(timeouts.backendRequest, `${path}.timeouts.backendRequest`) ?? 0);
      if (requestTimeoutMs > 0 && backendTimeoutMs > requestTimeoutMs) {
        c.fail(`${path}.timeouts.backendRequest`, `(${show(timeouts.backendRequest)}) must not be longer than timeouts.request (${show(timeouts.request)})`);
      }
    }
    const retry = f.retry === undefined ? undefined : retryPolicy(c, f.retry, `${path}.retry`);
    return { requestTimeoutMs, backendTimeoutMs, retry };
  });
}

/** The fields of a rule only some route kinds have. */
export type RuleExtras = Pick<RouteRule, 'requestTimeoutMs' | 'backendTimeoutMs' | 'retry'>;

/**
 * A rule of either kind: its name, matches (each by `matchOf`), backendRefs and filters (a
 * FaultInjection's ExtensionRef among them), and the kind's own fields (`extras`); undefined when
 * any of it has a problem. A rule with a RequestRedirect has no backendRefs; a ReplacePrefixMatch
 * (rewrite or redirect, the rule's or a backendRef's) needs the rule's one PathPrefix match.
 */
export function parseRule(
  c: Checker,
  v: unknown,
  index: number,
  namespace: string,
  kind: RouteKind,
  fields: readonly string[],
  matchOf: (c: Checker, v: unknown, path: string) => RouteMatch | undefined,
  extras: (f: Obj, path: string) => RuleExtras,
): RouteRule | undefined {
  const path = `spec.rules[${index}]`;
  const f = c.fields(v, path, fields);
  if (!f) return undefined;
  const before = c.problems.length;
  const name = f.name === undefined ? undefined : c.name(f.name, `${path}.name`);
  const matchList = f.matches === undefined ? [{}] : c.list(f.matches, `${path}.matches`, LIMITS.matches);
  const matches = (matchList?.length === 0 ? [{}] : (matchList ?? [])).flatMap((m, i) => matchOf(c, m, `${path}.matches[${i}]`) ?? []);
  const own = extras(f, path);
  const parsed = f.filters === undefined ? undefined : parseFilters(c, f.filters, `${path}.filters`, namespace, kind, 'rule', backendObject(namespace));
  const filters = parsed?.filters;
  let backends: BackendRef[] | undefined;
  // a redirect rule has no backendRefs, even when its filter has a problem of its own
  const redirects = Array.isArray(f.filters) && f.filters.some((x) => (x as Obj | null)?.type === 'RequestRedirect');
  if (redirects) {
    if (f.backendRefs !== undefined && (!Array.isArray(f.backendRefs) || f.backendRefs.length > 0)) c.fail(`${path}.backendRefs`, 'must be left out with a RequestRedirect filter (the proxy answers the redirect itself)');
    backends = [];
  } else backends = backendRefs(c, f.backendRefs, `${path}.backendRefs`, namespace, kind);
  const session = f.sessionPersistence === undefined ? undefined : parseSession(c, f.sessionPersistence, `${path}.sessionPersistence`);
  if (c.problems.length > before || !backends) return undefined;
  const rewrites = [filters?.rewrite, ...backends.map((b) => b.filters?.rewrite)].filter((r) => r !== undefined);
  if (filters?.rewrite !== undefined && rewrites.length > 1) return c.fail(path, 'has a URLRewrite on the rule and on a backendRef (one of them)');
  const prefixed = [filters?.redirect?.path, ...rewrites.map((r) => r.path)].some((p) => p?.type === 'ReplacePrefixMatch');
  if (prefixed && (matches.length !== 1 || matches[0]!.path.type !== 'PathPrefix')) return c.fail(`${path}.matches`, 'must be exactly one PathPrefix match with a ReplacePrefixMatch path (the prefix it replaces)');
  return { index, name, matches, backends, ...own, fault: parsed?.fault, ...(filters !== undefined && { filters }), ...(session !== undefined && { session }) };
}

function match(c: Checker, v: unknown, path: string): RouteMatch | undefined {
  const f = c.fields(v, path, MATCH_FIELDS);
  if (!f) return undefined;
  const before = c.problems.length;
  const p = f.path === undefined ? { type: 'PathPrefix' as const, value: '/' } : pathMatch(c, f.path, `${path}.path`);
  const headers = f.headers === undefined ? [] : (c.list(f.headers, `${path}.headers`, LIMITS.headers) ?? []).flatMap((h, i) => named(c, h, `${path}.headers[${i}]`, true) ?? []);
  const queryParams = f.queryParams === undefined ? [] : (c.list(f.queryParams, `${path}.queryParams`, LIMITS.queryParams) ?? []).flatMap((q, i) => named(c, q, `${path}.queryParams[${i}]`, false) ?? []);
  let method: string | undefined;
  if (f.method !== undefined) {
    if (typeof f.method !== 'string' || !METHODS.has(f.method)) c.fail(`${path}.method`, `must be one of ${[...METHODS].join(', ')}, got ${show(f.method)}`);
    else method = f.method;
  }
  if (c.problems.length > before || !p) return undefined;
  for (const list of [headers, queryParams]) {
    const names = list.map((x) => x.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) return c.fail(path, `matches ${show(dup)} twice (one entry per name)`);
  }
  return { path: p, headers, queryParams, method };
}

function pathMatch(c: Checker, v: unknown, path: string): PathMatcher | undefined {
  const f = c.fields(v, path, ['type', 'value']);
  if (!f) return undefined;
  const type = f.type ?? 'PathPrefix';
  const value = f.value ?? '/';
  if (typeof value !== 'string' || value.length === 0 || value.length > 1024) return c.fail(`${path}.value`, `must be a string of 1 to 1024 characters, got ${show(value)}`);
  if (type === 'RegularExpression') {
    const re = c.regex(value, `${path}.value`);
    return re && { type, value, re };
  }
  if (type !== 'Exact' && type !== 'PathPrefix') return c.fail(`${path}.type`, `must be Exact, PathPrefix or RegularExpression, got ${show(type)}`);
  if (!value.startsWith('/')) return c.fail(`${path}.value`, `must start with "/", got ${show(value)}`);
  if (/\/\/|\/\.\.?(\/|$)|[?#%]/.test(value)) return c.fail(`${path}.value`, `must be a normalized path (no "//", "/./", "/../", "?", "#" or "%"), got ${show(value)}`);
  // "/foo/" and "/foo" match the same prefix: element-wise
  return { type, value: type === 'PathPrefix' && value.length > 1 ? value.replace(/\/+$/, '') : value };
}

export function named(c: Checker, v: unknown, path: string, header: boolean): { name: string; match: StringMatcher } | undefined {
  const f = c.fields(v, path, ['type', 'name', 'value']);
  if (!f) return undefined;
  const name = c.string(f.name, `${path}.name`);
  if (name !== undefined && header && !TOKEN_RE.test(name)) return c.fail(`${path}.name`, `is not a valid header name: ${show(name)}`);
  if (name !== undefined && !header && name.length > 256) return c.fail(`${path}.name`, 'is longer than 256 characters');
  const value = f.value;
  if (typeof value !== 'string' || value.length > 4096) return c.fail(`${path}.value`, `must be a string of at most 4096 characters, got ${show(value)}`);
  if (name === undefined) return undefined;
  const type = f.type ?? 'Exact';
  const key = header ? name.toLowerCase() : name;
  if (type === 'Exact') return { name: key, match: { type, value } };
  if (type !== 'RegularExpression') return c.fail(`${path}.type`, `must be Exact or RegularExpression, got ${show(type)}`);
  const re = c.regex(value, `${path}.value`);
  return re && { name: key, match: { type, value, re } };
}

function backendRefs(c: Checker, v: unknown, path: string, namespace: string, kind: RouteKind): BackendRef[] | undefined {
  if (v === undefined) return c.fail(path, 'is missing (name the Service(s) that serve this rule, with weights for a canary)');
  const list = c.list(v, path, LIMITS.backendRefs);
  if (!list) return undefined;
  if (list.length === 0) return c.fail(path, 'is empty (name the Service(s) that serve this rule)');
  const before = c.problems.length;
  const refs = list.flatMap((b, i) => backend(c, b, `${path}[${i}]`, namespace, kind) ?? []);
  if (c.problems.length > before) return undefined;
  if (refs.reduce((sum, b) => sum + b.weight, 0) === 0) return c.fail(path, 'weights sum to 0: no request could be served (give at least one backend a weight above 0)');
  return refs;
}

function backend(c: Checker, v: unknown, path: string, namespace: string, kind: RouteKind): BackendRef | undefined {
  const f = c.fields(v, path, BACKEND_FIELDS);
  if (!f) return undefined;
  const ref = backendObject(namespace)(c, f, path, BACKEND_FIELDS);
  const weight = f.weight === undefined ? 1 : c.int(f.weight, `${path}.weight`, 0, MAX_WEIGHT);
  const parsed = f.filters === undefined ? undefined : parseFilters(c, f.filters, `${path}.filters`, namespace, kind, 'backend', backendObject(namespace));
  if (ref === undefined || weight === undefined || (f.filters !== undefined && parsed === undefined)) return undefined;
  return { ...ref, weight, ...(parsed?.filters !== undefined && { filters: parsed.filters }) };
}

/** A BackendObjectReference with `fields`: a Service of the route's namespace, and its port. */
function backendObject(namespace: string) {
  return (c: Checker, v: unknown, path: string, fields: readonly string[]): Omit<BackendRef, 'weight'> | undefined => {
    const f = c.fields(v, path, fields);
    if (!f) return undefined;
    if ((f.kind ?? 'Service') !== 'Service' || (f.group ?? '') !== '') return c.fail(path, `only a Service backend is supported (kind: Service, group: ""), got kind ${show(f.kind)} group ${show(f.group)}`);
    const name = c.name(f.name, `${path}.name`);
    const ns = f.namespace === undefined ? namespace : c.name(f.namespace, `${path}.namespace`);
    if (ns !== undefined && ns !== namespace) return c.fail(`${path}.namespace`, `a backend in another namespace (${show(ns)}) needs a ReferenceGrant, which is not supported yet (use a Service of ${show(namespace)})`);
    if (f.port === undefined) return c.fail(`${path}.port`, 'is missing (a Service backend needs its port)');
    const port = c.int(f.port, `${path}.port`, 1, 65535);
    if (name === undefined || ns === undefined || port === undefined) return undefined;
    return { namespace: ns, name, port };
  };
}

function retryPolicy(c: Checker, v: unknown, path: string): RetryPolicy | undefined {
  const f = c.fields(v, path, ['codes', 'attempts', 'backoff']);
  if (!f) return undefined;
  const codes = f.codes === undefined ? [...DEFAULT_RETRY_CODES] : (c.list(f.codes, `${path}.codes`, LIMITS.codes) ?? []).map((x, i) => c.int(x, `${path}.codes[${i}]`, 400, 599));
  const attempts = f.attempts === undefined ? DEFAULT_RETRY_ATTEMPTS : c.int(f.attempts, `${path}.attempts`, 1, MAX_ATTEMPTS);
  let backoffMs = f.backoff === undefined ? DEFAULT_BACKOFF_MS : c.duration(f.backoff, `${path}.backoff`);
  if (backoffMs !== undefined && backoffMs > MAX_BACKOFF_MS) {
    c.warnings.push({ path: `${path}.backoff`, message: `(${show(f.backoff)}) is above ${MAX_BACKOFF_MS}ms, the longest a retry waits: ${MAX_BACKOFF_MS}ms is used` });
    backoffMs = MAX_BACKOFF_MS;
  }
  if (codes.some((x) => x === undefined) || attempts === undefined || backoffMs === undefined) return undefined;
  return { codes: new Set(codes as number[]), attempts, backoffMs };
}
