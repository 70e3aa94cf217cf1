/**
 * Traffic routes as the agent's proxy uses them: a Gateway API HTTPRoute or GRPCRoute attached to a Service
 * (the mesh / GAMMA profile), validated once (parse-http-route.ts) and compiled into plain data
 * plus matchers. Pure: no I/O.
 */

export const HTTP_ROUTE_API_VERSION = 'gateway.networking.k8s.io/v1';

/** A Service a route attaches to (`parentRefs`, kind Service). */
export interface RouteParent {
  readonly namespace: string;
  readonly name: string;
  /** Only this service port; undefined: every port. */
  readonly port: number | undefined;
}

/** A string match: exact, or a whole-string regular expression (RE2-class, checked by regex-check.ts). */
export type StringMatcher = { readonly type: 'Exact'; readonly value: string } | { readonly type: 'RegularExpression'; readonly value: string; readonly re: RegExp };

export interface PathMatcher {
  readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression';
  readonly value: string;
  readonly re?: RegExp;
}

/** One `matches[]` entry: every condition holds. */
export interface RouteMatch {
  readonly path: PathMatcher;
  /** header name lowercased */
  readonly headers: readonly { readonly name: string; readonly match: StringMatcher }[];
  readonly queryParams: readonly { readonly name: string; readonly match: StringMatcher }[];
  readonly method: string | undefined;
  /** a GRPCRoute's match: the characters of the service and method it names exactly (its precedence) */
  readonly grpc?: { readonly service: number; readonly method: number };
}

export interface BackendRef {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
  /** 0 … 1,000,000; the rule's weights sum to more than 0 */
  readonly weight: number;
  /** its own filters (HTTPBackendRef / GRPCBackendRef `filters`): applied only when this backend is chosen */
  readonly filters?: RouteFilters;
}

/** One change to a message's headers (RequestHeaderModifier / ResponseHeaderModifier); `name` lowercase. */
export interface HeaderOp {
  readonly op: 'set' | 'add' | 'remove';
  readonly name: string;
  /** '' for remove */
  readonly value: string;
}

/** HTTPPathModifier: the whole path, or the rule's one PathPrefix match, replaced. */
export interface PathModifier {
  readonly type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  readonly value: string;
}

export interface RedirectFilter {
  /** undefined: the request's (http on the routed path) */
  readonly scheme: 'http' | 'https' | undefined;
  readonly hostname: string | undefined;
  readonly path: PathModifier | undefined;
  readonly port: number | undefined;
  /** 301, 302 (default), 303, 307 or 308 */
  readonly statusCode: number;
}

export interface MirrorFilter {
  /** a Service of the route's namespace (weight unused) */
  readonly backend: Omit<BackendRef, 'weight' | 'filters'>;
  /** mirrored when random() * denominator < numerator (percent p: p/100; default 100/100) */
  readonly numerator: number;
  readonly denominator: number;
}

/** A rule's (or a backendRef's) Gateway API filters, validated and compiled. */
export interface RouteFilters {
  readonly requestHeaders: readonly HeaderOp[];
  readonly responseHeaders: readonly HeaderOp[];
  readonly rewrite: { readonly hostname: string | undefined; readonly path: PathModifier | undefined } | undefined;
  readonly redirect: RedirectFilter | undefined;
  readonly mirrors: readonly MirrorFilter[];
}

export interface RetryPolicy {
  /** HTTP statuses that are retried (default 502, 503, 504) */
  readonly codes: ReadonlySet<number>;
  /** retries after the first attempt, as Gateway API's and Istio's `attempts` (default 2) */
  readonly attempts: number;
  /** base backoff in ms (default 25; each wait is jittered up to 10 times it, at most 250 ms) */
  readonly backoffMs: number;
}

export interface RouteRule {
  /** `rules[]` index */
  readonly index: number;
  readonly name: string | undefined;
  /** at least one (the default is PathPrefix /) */
  readonly matches: readonly RouteMatch[];
  readonly backends: readonly BackendRef[];
  /** `timeouts.request` in ms; 0: none */
  readonly requestTimeoutMs: number;
  /** `timeouts.backendRequest` in ms (one attempt); 0: none */
  readonly backendTimeoutMs: number;
  readonly retry: RetryPolicy | undefined;
  /** `namespace/name` of the FaultInjection its ExtensionRef filter names, if any */
  readonly fault: string | undefined;
  /** its other filters (none: undefined); a rule with a redirect has no backends */
  readonly filters?: RouteFilters;
  /** `sessionPersistence`: sticky sessions (agent/traffic/session.ts) */
  readonly session?: SessionPersistence;
}

/** A rule's sessionPersistence (Gateway API, GEP-1619). */
export interface SessionPersistence {
  readonly type: 'Cookie' | 'Header';
  /** the cookie's or header's name */
  readonly name: string;
  /** a session older than this starts again (absoluteTimeout); undefined: never */
  readonly absoluteMs: number | undefined;
  /** a session unused for this long starts again (idleTimeout); undefined: never */
  readonly idleMs: number | undefined;
  /** cookieConfig.lifetimeType Permanent: the cookie has Max-Age (absoluteTimeout) */
  readonly permanent: boolean;
}

export const FAULT_API_VERSION = 'palisade.dev/v1';

/** Istio's HTTPFaultInjection: percentages 0–100. */
export interface FaultSpec {
  readonly delay: { readonly ms: number; readonly percent: number } | undefined;
  /** `status`: the HTTP answer; `grpcStatus` (a gRPC abort): a gRPC call's trailers-only status (`status` is its HTTP equivalent for other requests) */
  readonly abort: { readonly status: number; readonly grpcStatus?: number; readonly percent: number } | undefined;
}

export interface CompiledFaultInjection extends FaultSpec, StoredObject {
  readonly kind: 'FaultInjection';
}

/** What every stored object has (the policy shape: the collector stores and pushes them alike). */
export interface StoredObject {
  readonly apiVersion: string;
  readonly namespace: string;
  readonly name: string;
  /** `namespace/name` */
  readonly id: string;
  /** these select Services, not workloads: always undefined (kept for the shared policy shape) */
  readonly selector: undefined;
  readonly source: string;
  readonly line: number;
  readonly manifest: Readonly<Record<string, unknown>>;
}

export interface CompiledHttpRoute extends StoredObject {
  readonly kind: 'HTTPRoute';
  readonly parents: readonly RouteParent[];
  readonly rules: readonly RouteRule[];
}

/** A GRPCRoute, compiled into the same rules (a method match is a path match: parse-grpc-route.ts). */
export interface CompiledGrpcRoute extends StoredObject {
  readonly kind: 'GRPCRoute';
  readonly parents: readonly RouteParent[];
  readonly rules: readonly RouteRule[];
}

/** Either route kind: one table, one matcher. */
export type CompiledRoute = CompiledHttpRoute | CompiledGrpcRoute;

export const isRoute = (p: { readonly kind: string }): p is CompiledRoute => p.kind === 'HTTPRoute' || p.kind === 'GRPCRoute';

/** What the proxy matches a request with: the normalized request line and headers. */
export interface RouteRequest {
  readonly method: string;
  readonly path: string;
  /** '' or '?…' as sent */
  readonly query: string;
  /** lowercase name → values */
  readonly headers: Readonly<Record<string, readonly string[]>>;
}
