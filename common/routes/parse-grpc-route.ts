/**
 * `spec` of a Gateway API GRPCRoute (gateway.networking.k8s.io/v1) attached to Services, checked
 * whole and compiled into the same rules as an HTTPRoute's (types.ts), so one RouteTable and one
 * matcher serve both. A gRPC method is an HTTP/2 POST to `/<service>/<method>`, so a method match
 * becomes a path match:
 *
 *   {service: S, method: M}            Exact `/S/M`
 *   {service: S}                       PathPrefix `/S` (every method of S)
 *   {method: M}                        RegularExpression `/[^/]+/M`
 *   type RegularExpression             RegularExpression `/(?:S)/(?:M)` (an absent one: any)
 *
 * Supported: parentRefs (kind Service, optional port), rules[].matches (method, headers Exact /
 * RegularExpression), rules[].backendRefs (Services of the route's namespace, port, weight),
 * rules[].filters and backendRefs[].filters (RequestHeaderModifier, ResponseHeaderModifier,
 * RequestMirror, and on the rule an ExtensionRef to a FaultInjection: parse-filters.ts),
 * rules[].name. rules[].sessionPersistence. Everything else (Gateway parents) is refused naming the field. GRPCRoute
 * has no timeouts or retry fields: a call's `grpc-timeout` bounds it (the proxy honours it). Pure.
 */
import { Checker, LIMITS, named, parseRouteSpec, parseRule, type HttpRouteSpecResult, type RuleExtras } from './parse-http-route';
import { show } from './checker';
import type { PathMatcher, RouteMatch, RouteRule } from './types';

const RULE_FIELDS = ['name', 'matches', 'backendRefs', 'filters', 'sessionPersistence'];
const MATCH_FIELDS = ['method', 'headers'];
const METHOD_FIELDS = ['type', 'service', 'method'];
/** Gateway API's patterns for an Exact match's service and method */
const SERVICE_RE = /^\.?[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/;
const METHOD_RE = /^[A-Za-z_][A-Za-z_0-9]*$/;
const MAX_NAME = 1024;


export type GrpcRouteSpecResult = HttpRouteSpecResult;

export function parseGrpcRouteSpec(spec: unknown, namespace: string): GrpcRouteSpecResult {
  return parseRouteSpec(spec, namespace, 'greeter', rule);
}

/** GRPCRoute has no timeouts or retry: a call's grpc-timeout bounds it. */
const NO_EXTRAS: RuleExtras = { requestTimeoutMs: 0, backendTimeoutMs: 0, retry: undefined };

function rule(c: Checker, v: unknown, index: number, namespace: string): RouteRule | undefined {
  return parseRule(c, v, index, namespace, 'GRPCRoute', RULE_FIELDS, match, () => NO_EXTRAS);
}

function match(c: Checker, v: unknown, path: string): RouteMatch | undefined {
  const f = c.fields(v, path, MATCH_FIELDS);
  if (!f) return undefined;
  const before = c.problems.length;
  const m = f.method === undefined ? { path: { type: 'PathPrefix' as const, value: '/' }, service: 0, method: 0 } : methodMatch(c, f.method, `${path}.method`);
  const headers = f.headers === undefined ? [] : (c.list(f.headers, `${path}.headers`, LIMITS.headers) ?? []).flatMap((h, i) => named(c, h, `${path}.headers[${i}]`, true) ?? []);
  if (c.problems.length > before || !m) return undefined;
  const names = headers.map((x) => x.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) return c.fail(path, `matches ${show(dup)} twice (one entry per name)`);
  return { path: m.path, headers, queryParams: [], method: undefined, grpc: { service: m.service, method: m.method } };
}

/** A GRPCMethodMatch as the path it matches (see the table at the top), and the characters it names exactly. */
export function methodMatch(c: Checker, v: unknown, path: string): { path: PathMatcher; service: number; method: number } | undefined {
  const f = c.fields(v, path, METHOD_FIELDS);
  if (!f) return undefined;
  const type = f.type ?? 'Exact';
  if (type !== 'Exact' && type !== 'RegularExpression') return c.fail(`${path}.type`, `must be Exact or RegularExpression, got ${show(type)}`);
  const part = (key: 'service' | 'method'): string | undefined => {
    const x = f[key];
    if (x === undefined) return undefined;
    if (typeof x !== 'string' || x.length === 0 || x.length > MAX_NAME) return c.fail(`${path}.${key}`, `must be a string of 1 to ${MAX_NAME} characters, got ${show(x)}`);
    if (type === 'Exact' && !(key === 'service' ? SERVICE_RE : METHOD_RE).test(x)) {
      return c.fail(`${path}.${key}`, `is not a gRPC ${key} name${key === 'service' ? ' (package.Service)' : ''}: ${show(x)}`);
    }
    return x;
  };
  const before = c.problems.length;
  const service = part('service');
  const method = part('method');
  if (c.problems.length > before) return undefined;
  if (service === undefined && method === undefined) return c.fail(path, 'needs service, method or both (to match every call, leave out method)');
  if (type === 'Exact') {
    const named = { service: service?.length ?? 0, method: method?.length ?? 0 };
    if (service !== undefined && method !== undefined) return { path: { type: 'Exact', value: `/${service}/${method}` }, ...named };
    if (service !== undefined) return { path: { type: 'PathPrefix', value: `/${service}` }, ...named };
    return regexPath(c, `/[^/]+/${method!}`, path, named);
  }
  return regexPath(c, `/(?:${service ?? '[^/]+'})/(?:${method ?? '[^/]+'})`, path, { service: 0, method: 0 });
}

function regexPath(c: Checker, value: string, path: string, named: { service: number; method: number }): { path: PathMatcher; service: number; method: number } | undefined {
  const re = c.regex(value, path);
  return re && { path: { type: 'RegularExpression', value, re }, ...named };
}
