/**
 * A route rule's (or a backendRef's) `filters`, checked whole and compiled (Gateway API v1):
 *
 *   HTTPRoute rule       RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect,
 *                        RequestMirror, ExtensionRef (a palisade.dev FaultInjection)
 *   HTTPRoute backendRef RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestMirror
 *   GRPCRoute rule       RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef
 *   GRPCRoute backendRef RequestHeaderModifier, ResponseHeaderModifier, RequestMirror
 *
 * The spec's rules: at most one of each filter type but RequestMirror; URLRewrite and
 * RequestRedirect never together; one action per header name in a modifier; a header a modifier
 * names is a valid token and not one the mesh or the connection owns (Host, framing, hop-by-hop,
 * x-forwarded-client-cert, x-palisade-*; for gRPC the reserved grpc-*); percent or fraction, not
 * both. The checks that span the rule (a redirect has no backendRefs, ReplacePrefixMatch needs
 * exactly one PathPrefix match) are the caller's (parse-http-route.ts). Pure.
 */
import { show, type Checker, type Obj } from './checker';
import type { BackendRef, HeaderOp, MirrorFilter, PathModifier, RedirectFilter, RouteFilters } from './types';

export type RouteKind = 'HTTPRoute' | 'GRPCRoute';
export type FilterLevel = 'rule' | 'backend';

export interface ParsedFilters {
  filters: RouteFilters | undefined;
  /** `namespace/name` of the FaultInjection an ExtensionRef names */
  fault: string | undefined;
}

type BackendOf = (c: Checker, v: unknown, path: string, fields: readonly string[]) => Omit<BackendRef, 'weight'> | undefined;

const MAX_FILTERS = 16;
const MAX_HEADERS = 16;
/** The field each filter type keeps its settings in. */
const FIELD: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  URLRewrite: 'urlRewrite',
  RequestRedirect: 'requestRedirect',
  RequestMirror: 'requestMirror',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
};
const SUPPORTED: Record<RouteKind, Record<FilterLevel, readonly string[]>> = {
  HTTPRoute: {
    rule: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'URLRewrite', 'RequestRedirect', 'RequestMirror', 'ExtensionRef'],
    backend: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'URLRewrite', 'RequestMirror'],
  },
  GRPCRoute: {
    rule: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'],
    backend: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror'],
  },
};
/** Why a known filter type is refused where it is. */
function whyNot(type: string, kind: RouteKind): string {
  if (type === 'CORS' || type === 'ExternalAuth') return `${type} is not supported (remove it)`;
  if (kind === 'GRPCRoute' && (type === 'URLRewrite' || type === 'RequestRedirect')) return `GRPCRoute has no ${type}`;
  if (type === 'RequestRedirect') return 'a redirect is answered without a backend: put it on the rule, without backendRefs';
  return 'a FaultInjection applies to the whole rule: put it on the rule';
}
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/;
/** Gateway API's header value: printable ASCII, single spaces or tabs between. */
const VALUE_RE = /^[!-~]+([\t ]?[!-~]+)*$/;
const HOSTNAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** RFC 3986 path characters; no "//", "/./" or "/../" */
const PATH_RE = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$/;
/** Connection-scoped headers and the ones the proxy writes itself: never a route's to change. */
const OWNED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'http2-settings', 'expect', 'x-forwarded-client-cert']);
const STATUS_CODES = [301, 302, 303, 307, 308];


/** Why a modifier may not name `name` (lowercase), or undefined. */
export function ownedHeader(name: string, kind: RouteKind): string | undefined {
  const n = name.replaceAll('_', '-');
  if (n === 'host') return 'is the request\'s authority (to change it, use URLRewrite hostname)';
  if (OWNED.has(n) || n.startsWith('proxy-')) return 'is the mesh\'s or the connection\'s own header: a route cannot change it';
  if (n.startsWith('x-palisade-')) return 'is the mesh\'s own header (x-palisade-*): a route cannot change it';
  if (kind === 'GRPCRoute' && n.startsWith('grpc-')) return 'is reserved by gRPC (grpc-*): a route cannot change it';
  return undefined;
}

export function parseFilters(c: Checker, v: unknown, path: string, namespace: string, kind: RouteKind, level: FilterLevel, backendOf: BackendOf): ParsedFilters | undefined {
  const list = c.list(v, path, MAX_FILTERS);
  if (!list) return undefined;
  const before = c.problems.length;
  const seen = new Map<string, number>();
  const requestHeaders: HeaderOp[] = [];
  const responseHeaders: HeaderOp[] = [];
  const mirrors: MirrorFilter[] = [];
  let rewrite: RouteFilters['rewrite'];
  let redirect: RedirectFilter | undefined;
  let fault: string | undefined;
  list.forEach((item, i) => {
    const at = `${path}[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return void c.fail(at, `must be a mapping, got ${show(item)}`);
    const type = (item as Obj).type;
    if (typeof type !== 'string' || FIELD[type] === undefined) return void c.fail(`${at}.type`, `must be one of ${SUPPORTED[kind][level].join(', ')}, got ${show(type)}`);
    if (!SUPPORTED[kind][level].includes(type)) return void c.fail(`${at}.type`, `${type} is not supported ${level === 'backend' ? 'on a backendRef' : `in a ${kind}`}: ${whyNot(type, kind)}`);
    const field = FIELD[type]!;
    const f = c.fields(item, at, ['type', field]);
    if (!f) return;
    if (f[field] === undefined) return void c.fail(`${at}.${field}`, `is missing (a ${type} filter needs it)`);
    const n = (seen.get(type) ?? 0) + 1;
    seen.set(type, n);
    if (n > 1 && type !== 'RequestMirror') return void c.fail(at, `a second ${type} filter (at most one per ${level === 'rule' ? 'rule' : 'backendRef'})`);
    const cfg = f[field];
    const here = `${at}.${field}`;
    if (type === 'RequestHeaderModifier') requestHeaders.push(...(headerFilter(c, cfg, here, kind) ?? []));
    else if (type === 'ResponseHeaderModifier') responseHeaders.push(...(headerFilter(c, cfg, here, kind) ?? []));
    else if (type === 'URLRewrite') rewrite = urlRewrite(c, cfg, here);
    else if (type === 'RequestRedirect') redirect = requestRedirect(c, cfg, here);
    else if (type === 'RequestMirror') {
      const m = requestMirror(c, cfg, here, backendOf);
      if (m) mirrors.push(m);
    } else fault = faultRef(c, cfg, here, namespace);
  });
  if (seen.has('URLRewrite') && seen.has('RequestRedirect')) c.fail(path, 'has both URLRewrite and RequestRedirect (a request is either rewritten and forwarded, or redirected)');
  if (c.problems.length > before) return undefined;
  const any = requestHeaders.length + responseHeaders.length + mirrors.length > 0 || rewrite !== undefined || redirect !== undefined;
  return { filters: any ? { requestHeaders, responseHeaders, rewrite, redirect, mirrors } : undefined, fault };
}

/** HTTPHeaderFilter: set, add, remove; one action per header name. */
function headerFilter(c: Checker, v: unknown, path: string, kind: RouteKind): HeaderOp[] | undefined {
  const f = c.fields(v, path, ['set', 'add', 'remove']);
  if (!f) return undefined;
  const ops: HeaderOp[] = [];
  const names = new Set<string>();
  const name = (x: unknown, at: string): string | undefined => {
    if (typeof x !== 'string' || !TOKEN_RE.test(x)) {
      if (typeof x === 'string' && x.startsWith(':')) return c.fail(at, `${show(x)} is a pseudo-header: the proxy's own, a route cannot change it`);
      return c.fail(at, `is not a valid header name: ${show(x)}`);
    }
    const lower = x.toLowerCase();
    const owned = ownedHeader(lower, kind);
    if (owned !== undefined) return c.fail(at, `${show(x)} ${owned}`);
    if (names.has(lower)) return c.fail(at, `${show(x)} is named twice (one action per header name)`);
    names.add(lower);
    return lower;
  };
  for (const op of ['set', 'add'] as const) {
    if (f[op] === undefined) continue;
    (c.list(f[op], `${path}.${op}`, MAX_HEADERS) ?? []).forEach((h, i) => {
      const at = `${path}.${op}[${i}]`;
      const hf = c.fields(h, at, ['name', 'value']);
      if (!hf) return;
      const n = name(hf.name, `${at}.name`);
      const value = hf.value;
      if (typeof value !== 'string' || value.length > 4096 || !VALUE_RE.test(value)) return void c.fail(`${at}.value`, `must be 1 to 4096 printable ASCII characters (spaces or tabs only between), got ${show(value)}`);
      if (n !== undefined) ops.push({ op, name: n, value });
    });
  }
  if (f.remove !== undefined) {
    (c.list(f.remove, `${path}.remove`, MAX_HEADERS) ?? []).forEach((x, i) => {
      const n = name(x, `${path}.remove[${i}]`);
      if (n !== undefined) ops.push({ op: 'remove', name: n, value: '' });
    });
  }
  return ops;
}

function hostname(c: Checker, v: unknown, path: string): string | undefined {
  if (typeof v !== 'string' || v.length > 253 || !HOSTNAME_RE.test(v)) return c.fail(path, `must be a lowercase DNS name without a port, got ${show(v)}`);
  return v;
}

/** HTTPPathModifier. */
function pathModifier(c: Checker, v: unknown, path: string): PathModifier | undefined {
  const f = c.fields(v, path, ['type', 'replaceFullPath', 'replacePrefixMatch']);
  if (!f) return undefined;
  const type = f.type;
  if (type !== 'ReplaceFullPath' && type !== 'ReplacePrefixMatch') return c.fail(`${path}.type`, `must be ReplaceFullPath or ReplacePrefixMatch, got ${show(type)}`);
  const key = type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  const other = type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
  if (f[other] !== undefined) return c.fail(`${path}.${other}`, `must not be set when type is ${type} (set ${key})`);
  const value = f[key];
  if (typeof value !== 'string') return c.fail(`${path}.${key}`, `is missing (type ${type} needs it)`);
  const empty = value === '' && type === 'ReplacePrefixMatch';
  if (!empty && (!value.startsWith('/') || value.length > 1024 || !PATH_RE.test(value) || /\/\/|\/\.\.?(\/|$)/.test(value))) {
    return c.fail(`${path}.${key}`, `must be a normalized path of at most 1024 characters starting with "/" (no "?", "#", "//", "/./" or "/../"), got ${show(value)}`);
  }
  return { type, value };
}

function urlRewrite(c: Checker, v: unknown, path: string): RouteFilters['rewrite'] {
  const f = c.fields(v, path, ['hostname', 'path']);
  if (!f) return undefined;
  const host = f.hostname === undefined ? undefined : hostname(c, f.hostname, `${path}.hostname`);
  const p = f.path === undefined ? undefined : pathModifier(c, f.path, `${path}.path`);
  return { hostname: host, path: p };
}

function requestRedirect(c: Checker, v: unknown, path: string): RedirectFilter | undefined {
  const f = c.fields(v, path, ['scheme', 'hostname', 'path', 'port', 'statusCode']);
  if (!f) return undefined;
  if (f.scheme !== undefined && f.scheme !== 'http' && f.scheme !== 'https') return c.fail(`${path}.scheme`, `must be http or https, got ${show(f.scheme)}`);
  const host = f.hostname === undefined ? undefined : hostname(c, f.hostname, `${path}.hostname`);
  const p = f.path === undefined ? undefined : pathModifier(c, f.path, `${path}.path`);
  const port = f.port === undefined ? undefined : c.int(f.port, `${path}.port`, 1, 65535);
  const statusCode = f.statusCode ?? 302;
  if (typeof statusCode !== 'number' || !STATUS_CODES.includes(statusCode)) return c.fail(`${path}.statusCode`, `must be one of ${STATUS_CODES.join(', ')}, got ${show(statusCode)}`);
  return { scheme: f.scheme as RedirectFilter['scheme'], hostname: host, path: p, port, statusCode };
}

function requestMirror(c: Checker, v: unknown, path: string, backendOf: BackendOf): MirrorFilter | undefined {
  const f = c.fields(v, path, ['backendRef', 'percent', 'fraction']);
  if (!f) return undefined;
  if (f.backendRef === undefined) return c.fail(`${path}.backendRef`, 'is missing (the Service the copies go to)');
  const b = backendOf(c, f.backendRef, `${path}.backendRef`, ['group', 'kind', 'name', 'namespace', 'port']);
  if (f.percent !== undefined && f.fraction !== undefined) return c.fail(path, 'has both percent and fraction (one of them)');
  let numerator = 100;
  let denominator = 100;
  if (f.percent !== undefined) {
    const p = c.int(f.percent, `${path}.percent`, 0, 100);
    if (p === undefined) return undefined;
    numerator = p;
  } else if (f.fraction !== undefined) {
    const fr = c.fields(f.fraction, `${path}.fraction`, ['numerator', 'denominator']);
    if (!fr) return undefined;
    const d = fr.denominator === undefined ? 100 : c.int(fr.denominator, `${path}.fraction.denominator`, 1, 2 ** 31 - 1);
    const n = c.int(fr.numerator, `${path}.fraction.numerator`, 0, 2 ** 31 - 1);
    if (n === undefined || d === undefined) return undefined;
    if (n > d) return c.fail(`${path}.fraction`, `numerator (${n}) must not be above denominator (${d})`);
    [numerator, denominator] = [n, d];
  }
  if (!b) return undefined;
  return { backend: { namespace: b.namespace, name: b.name, port: b.port }, numerator, denominator };
}

/** An ExtensionRef to a FaultInjection of the route's namespace. */
function faultRef(c: Checker, v: unknown, path: string, namespace: string): string | undefined {
  const ref = c.fields(v, path, ['group', 'kind', 'name']);
  if (!ref) return undefined;
  if (ref.group !== 'palisade.dev' || ref.kind !== 'FaultInjection') return c.fail(path, `must name a FaultInjection of group palisade.dev, got group ${show(ref.group)} kind ${show(ref.kind)}`);
  const name = c.name(ref.name, `${path}.name`);
  return name === undefined ? undefined : `${namespace}/${name}`;
}
