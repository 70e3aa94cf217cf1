/**
 * What a rule's filters do to one request, as pure functions of the request and the compiled
 * filters (parse-filters.ts): the path a URLRewrite or RequestRedirect makes, the Location of a
 * redirect, and the edit the proxy applies to the request it forwards and the response it relays
 * (the rule's filters, then the chosen backendRef's). Table-tested.
 */
import type { BackendRef, HeaderOp, PathModifier, RedirectFilter, RouteRule } from './types';

/**
 * `path` with `m` applied: the whole path replaced, or the rule's PathPrefix match `prefix`
 * (element-wise, as the match: "/foo" matches "/foo", "/foo/" and "/foo/bar") replaced by the
 * value, a trailing "/" of the value ignored; an empty result is "/" (Gateway API's table).
 */
export function modifiedPath(path: string, m: PathModifier, prefix: string | undefined): string {
  if (m.type === 'ReplaceFullPath') return m.value;
  const p = prefix === undefined || prefix === '/' ? '' : prefix.replace(/\/+$/, '');
  const rest = path.startsWith(p) ? path.slice(p.length) : path;
  const out = m.value.replace(/\/+$/, '') + rest;
  return out === '' ? '/' : out.startsWith('/') ? out : `/${out}`;
}

/** The host of a Host header value, without its port ("[::1]:80" → "[::1]"). */
export function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

export interface RedirectRequest {
  readonly path: string;
  /** '' or '?…' as sent (kept in the Location) */
  readonly query: string;
  /** the request's host, its port ignored */
  readonly host: string;
}

/**
 * The Location of a RequestRedirect: the filter's scheme, hostname, port and path, the request's
 * for what it leaves out. The port: the filter's; else the scheme's well-known port when it names
 * a scheme; else the listener's (the Service port the client connected to). A scheme's
 * well-known port is left out of the URL.
 */
export function redirectLocation(r: RedirectFilter, req: RedirectRequest, listenerPort: number, prefix: string | undefined): string {
  const scheme = r.scheme ?? 'http';
  const host = r.hostname ?? hostWithoutPort(req.host);
  const wellKnown = scheme === 'https' ? 443 : 80;
  const port = r.port ?? (r.scheme !== undefined ? wellKnown : listenerPort);
  const path = r.path === undefined ? req.path : modifiedPath(req.path, r.path, prefix);
  return `${scheme}://${host}${port === wellKnown ? '' : `:${port}`}${path}${req.query}`;
}

/** The changes to a forwarded request and its relayed response (agent/proxy/http's ForwardEdit). */
export interface RequestEdit {
  readonly request: readonly HeaderOp[];
  readonly response: readonly HeaderOp[];
  /** the forwarded path (undefined: as normalized) */
  readonly path: string | undefined;
  /** the forwarded Host / :authority (undefined: as sent) */
  readonly host: string | undefined;
}

/** The one PathPrefix match a rule with a ReplacePrefixMatch has (parse-http-route.ts checks it). */
const prefixOf = (rule: RouteRule): string | undefined => rule.matches[0]?.path.value;

/**
 * The edit of a request `rule` sends to `backend` (undefined: no filter changes anything): the
 * rule's request headers then the backendRef's; the response's the backendRef's then the rule's
 * (inside out); the one URLRewrite of either. `backend` undefined: the rule's filters alone (what
 * a mirrored copy gets).
 */
export function requestEdit(rule: RouteRule, backend: BackendRef | undefined, path: string): RequestEdit | undefined {
  const r = rule.filters;
  const b = backend?.filters;
  if (r === undefined && b === undefined) return undefined;
  const rewrite = r?.rewrite ?? b?.rewrite;
  const request = [...(r?.requestHeaders ?? []), ...(b?.requestHeaders ?? [])];
  const response = [...(b?.responseHeaders ?? []), ...(r?.responseHeaders ?? [])];
  const newPath = rewrite?.path === undefined ? undefined : modifiedPath(path, rewrite.path, prefixOf(rule));
  if (request.length === 0 && response.length === 0 && newPath === undefined && rewrite?.hostname === undefined) return undefined;
  return { request, response, path: newPath, host: rewrite?.hostname };
}

/** The Location a rule's redirect answers `req` with (the rule has a RequestRedirect). */
export function ruleRedirect(rule: RouteRule, req: RedirectRequest, listenerPort: number): string {
  return redirectLocation(rule.filters!.redirect!, req, listenerPort, prefixOf(rule));
}
