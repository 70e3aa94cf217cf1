/**
 * The collector's flow query API as both ends see it: paths, request filters, response shapes
 * (the policy and audit endpoints are in control-api.ts). The collector (collector/api/) and the
 * CLI (`palisade observe`) import this one module, so a filter means the same thing in the query
 * string, in SQL (collector/flows/query.ts) and in `matchesFilters`. The routes and what each
 * filter matches: docs/architecture.md "The flow API".
 */
import { isIP } from 'node:net';
import { FLOW_PROTOCOLS, type FlowDirection, type FlowEndpoint, type FlowProtocol, type FlowRecord, type FlowVerdict } from './flow';
import { quoteValue } from './errors';
import { invalidParameter, oneOf, whole } from './query-params';
import type { SinkCounts } from './sink-counts';

export type { SinkCounts };

export interface FlowFilters {
  from?: string;
  to?: string;
  verdict?: FlowVerdict;
  protocol?: FlowProtocol;
  httpPath?: string;
  /** epoch ms, inclusive */
  since?: number;
  /** epoch ms, exclusive */
  until?: number;
  limit?: number;
  node?: string;
  direction?: FlowDirection;
  /** flows through this route (`traffic.route`): `namespace/name`, or a name in any namespace */
  route?: string;
}

export interface StoredFlow extends FlowRecord {
  /** The row in this collector's store (another replica's store numbers its own). */
  id: number;
  /**
   * Which agent batch it came in, `SESSION/SEQ/INDEX` (the reporter's session, the batch's seq, the
   * record's place in it): with the node, the same flow stored by two collector replicas (a batch
   * resent after a failover) has the same origin, so `observe` over several collectors shows it once.
   * Absent on flows stored before origins were kept.
   */
  origin?: string;
}

export interface FlowsResponse {
  flows: StoredFlow[];
  count: number;
}

export interface StatsResponse {
  stored: number;
  lost: Record<string, number>;
  nodes: Record<string, { stored: number; lost: number }>;
  /** each flow sink beyond the store (`otlp:<host:port>`), when the collector has any */
  sinks?: Record<string, SinkCounts>;
}

/** Error body of every non-2xx API answer. */
export interface ErrorResponse {
  error: { code: string; message: string };
}

export const API = {
  flows: '/v1/flows',
  follow: '/v1/flows/follow',
  stats: '/v1/stats',
  metrics: '/metrics',
  healthz: '/healthz',
} as const;

export const DEFAULT_FLOWS_LIMIT = 100;
export const MAX_FLOWS_LIMIT = 10_000;

const VERDICTS: readonly FlowVerdict[] = ['allowed', 'denied', 'audit', 'error'];
const PROTOCOLS: readonly FlowProtocol[] = FLOW_PROTOCOLS;
const DIRECTIONS: readonly FlowDirection[] = ['outbound', 'inbound', 'egress'];
const MAX_VALUE_LENGTH = 1024;

/** Query parameter names, in the order filtersToQuery writes them. */
const PARAMS = ['from', 'to', 'verdict', 'protocol', 'httpPath', 'since', 'until', 'limit', 'node', 'direction', 'route'] as const;
type Param = (typeof PARAMS)[number];
const PARAM_SET: ReadonlySet<string> = new Set(PARAMS);

/** URLSearchParams text (no leading `?`) for `f`; undefined fields are left out. */
export function filtersToQuery(f: FlowFilters): string {
  const q = new URLSearchParams();
  for (const p of PARAMS) {
    const v = f[p];
    if (v !== undefined) q.append(p, String(v));
  }
  return q.toString();
}

/**
 * The filters in `q`. Throws PalisadeError('PALISADE_ERR_INVALID_ARGUMENT') with one line naming
 * the parameter for: unknown parameters, repeated parameters, empty or over-long values, unknown
 * verdict/protocol/direction, and times or limit that are not whole non-negative numbers
 * (limit must be at least 1).
 */
export function parseFilterQuery(q: URLSearchParams): FlowFilters {
  const out: FlowFilters = {};
  const seen = new Set<string>();
  for (const [name, v] of q) {
    if (!PARAM_SET.has(name)) {
      throw invalidParameter('parameter', `unknown parameter ${quoteValue(name)} (known: ${PARAMS.join(', ')})`);
    }
    const p = name as Param;
    if (seen.has(p)) throw invalidParameter(p, 'given more than once');
    seen.add(p);
    if (v.length === 0) throw invalidParameter(p, 'empty value');
    if (v.length > MAX_VALUE_LENGTH) throw invalidParameter(p, `longer than ${MAX_VALUE_LENGTH} characters`);
    switch (p) {
      case 'from':
      case 'to':
      case 'httpPath':
      case 'node':
      case 'route':
        out[p] = v;
        break;
      case 'verdict':
        out.verdict = oneOf(p, v, VERDICTS);
        break;
      case 'protocol':
        out.protocol = oneOf(p, v, PROTOCOLS);
        break;
      case 'direction':
        out.direction = oneOf(p, v, DIRECTIONS);
        break;
      case 'since':
      case 'until':
        out[p] = whole(p, v, 0);
        break;
      case 'limit':
        out.limit = whole(p, v, 1);
        break;
    }
  }
  return out;
}

/** How an endpoint filter value is read (see the module comment). */
export type EndpointMatch =
  | { kind: 'identity'; identity: string }
  | { kind: 'ip'; ip: string }
  | { kind: 'namespaced'; namespace: string; workload: string }
  | { kind: 'workload'; workload: string };

export function endpointMatch(value: string): EndpointMatch {
  if (value.startsWith('spiffe://')) return { kind: 'identity', identity: value };
  if (isIP(value) !== 0) return { kind: 'ip', ip: value };
  const slash = value.indexOf('/');
  if (slash >= 0) return { kind: 'namespaced', namespace: value.slice(0, slash), workload: value.slice(slash + 1) };
  return { kind: 'workload', workload: value };
}

function endpointMatches(e: FlowEndpoint, value: string): boolean {
  const m = endpointMatch(value);
  switch (m.kind) {
    case 'identity':
      return e.identity === m.identity;
    case 'ip':
      return e.ip === m.ip;
    case 'namespaced':
      return e.namespace === m.namespace && e.workload === m.workload;
    case 'workload':
      return e.workload === m.workload;
  }
}

/** `httpPath` filter: exact, or prefix when the value ends with `*`. */
export function httpPathMatches(path: string, filter: string): boolean {
  return filter.endsWith('*') ? path.startsWith(filter.slice(0, -1)) : path === filter;
}

/** `route` filter: `namespace/name` exactly, or a bare name in any namespace. */
export function routeMatches(route: string, filter: string): boolean {
  return filter.includes('/') ? route === filter : route.slice(route.indexOf('/') + 1) === filter;
}

/** Whether `f` passes `filters` (`limit` is ignored); same semantics as the collector's SQL. */
export function matchesFilters(f: FlowRecord, filters: FlowFilters): boolean {
  if (filters.node !== undefined && f.node !== filters.node) return false;
  if (filters.direction !== undefined && f.direction !== filters.direction) return false;
  if (filters.verdict !== undefined && f.verdict !== filters.verdict) return false;
  if (filters.protocol !== undefined && f.protocol !== filters.protocol) return false;
  if (filters.from !== undefined && !endpointMatches(f.source, filters.from)) return false;
  if (filters.to !== undefined && !endpointMatches(f.destination, filters.to)) return false;
  if (filters.httpPath !== undefined && !(f.http && httpPathMatches(f.http.path, filters.httpPath))) return false;
  if (filters.route !== undefined && !(f.traffic && routeMatches(f.traffic.route, filters.route))) return false;
  if (filters.since !== undefined || filters.until !== undefined) {
    const t = Date.parse(f.time);
    if (filters.since !== undefined && !(t >= filters.since)) return false;
    if (filters.until !== undefined && !(t < filters.until)) return false;
  }
  return true;
}
