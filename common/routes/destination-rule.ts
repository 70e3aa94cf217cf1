/**
 * An Istio DestinationRule (networking.istio.io/v1) as the proxy uses it: its `trafficPolicy`
 * only, for one Service (`host`), with each `portLevelSettings` entry merged over it field by
 * field (Istio's merge: a port's loadBalancer, connectionPool or outlierDetection replaces the
 * rule's own). Plain data, validated once (parse-destination-rule.ts). Pure: no I/O.
 */
import type { StoredObject } from './types';

export const DESTINATION_RULE_API_VERSIONS: readonly string[] = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];

/** How an endpoint is chosen. Absent: the mesh's default (power of two choices over peak-EWMA). */
export type LoadBalancer =
  | { readonly kind: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' }
  | {
      readonly kind: 'HASH';
      /** what the hash is of: a request header, a cookie, the client pod's address, a query parameter */
      readonly by: 'header' | 'cookie' | 'source-ip' | 'query';
      /** the header (lowercased), cookie or parameter name; '' for source-ip */
      readonly name: string;
      /** a cookie the proxy sets when a request has none (Istio's httpCookie.ttl given): its lifetime in ms, 0 = session cookie (agent/traffic/hash-cookie.ts) */
      readonly cookieTtlMs?: number;
      readonly cookiePath?: string;
    };

/** connectionPool, with Istio's defaults for what is left out (no limit, 10 s connect), idle time the proxy's own. */
export interface ConnectionPool {
  /** tcp.maxConnections: connections to the Service from this node at once */
  readonly maxConnections: number;
  /** tcp.connectTimeout in ms */
  readonly connectTimeoutMs: number;
  /** http.http1MaxPendingRequests: requests waiting for room, past which a request is refused (503, UO) */
  readonly maxPendingRequests: number;
  /** http.http2MaxRequests: requests to the Service in progress at once */
  readonly maxRequests: number;
  /** http.maxRequestsPerConnection: requests one upstream connection carries, then it is closed; 0 unlimited */
  readonly maxRequestsPerConnection: number;
  /** http.maxRetries: retries in progress at once */
  readonly maxRetries: number;
  /** http.idleTimeout in ms: an idle upstream connection is closed after it; undefined: the proxy's own (30 s HTTP/1.1, 60 s HTTP/2) */
  readonly idleTimeoutMs: number | undefined;
}

/** outlierDetection, with Istio's defaults for what is left out. */
export interface OutlierDetection {
  /** 0: off */
  readonly consecutive5xx: number;
  /** 502, 503, 504 and connect failures in a row; 0: off */
  readonly consecutiveGateway: number;
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionPercent: number;
  readonly minHealthPercent: number;
}

export interface TrafficPolicy {
  readonly loadBalancer: LoadBalancer | undefined;
  readonly connectionPool: ConnectionPool | undefined;
  readonly outlierDetection: OutlierDetection | undefined;
}

export interface CompiledDestinationRule extends StoredObject {
  readonly kind: 'DestinationRule';
  /** the Service `host` names */
  readonly host: { readonly namespace: string; readonly name: string };
  /** the whole rule's policy */
  readonly policy: TrafficPolicy;
  /** by service port: the rule's policy with the port's settings over it */
  readonly ports: ReadonlyMap<number, TrafficPolicy>;
  /** namespaces whose clients it applies to; undefined: every one (Istio's `*`) */
  readonly exportTo: ReadonlySet<string> | undefined;
}

/** Istio's "no limit": 2^32 − 1. */
export const NO_LIMIT = 4_294_967_295;

export const DEFAULT_CONNECTION_POOL: ConnectionPool = {
  maxConnections: NO_LIMIT,
  connectTimeoutMs: 10_000,
  maxPendingRequests: NO_LIMIT,
  maxRequests: NO_LIMIT,
  maxRequestsPerConnection: 0,
  maxRetries: NO_LIMIT,
  idleTimeoutMs: undefined,
};

export const DEFAULT_OUTLIER_DETECTION: OutlierDetection = {
  consecutive5xx: 5,
  consecutiveGateway: 0,
  intervalMs: 10_000,
  baseEjectionMs: 30_000,
  maxEjectionPercent: 10,
  minHealthPercent: 0,
};

/** One short line of what a policy sets, for `palisade status` (left-out parts are not named). */
export function describeTrafficPolicy(p: TrafficPolicy): string {
  const parts: string[] = [];
  const lb = p.loadBalancer;
  if (lb !== undefined) parts.push(lb.kind === 'HASH' ? `hash(${lb.by}${lb.name === '' ? '' : ` ${lb.name}`})` : lb.kind.toLowerCase().replace('_', '-'));
  const cp = p.connectionPool;
  if (cp !== undefined) {
    const limits = [
      cp.maxConnections < NO_LIMIT && `connections ${cp.maxConnections}`,
      cp.maxRequests < NO_LIMIT && `requests ${cp.maxRequests}`,
      cp.maxPendingRequests < NO_LIMIT && `pending ${cp.maxPendingRequests}`,
      cp.maxRetries < NO_LIMIT && `retries ${cp.maxRetries}`,
      cp.maxRequestsPerConnection > 0 && `per connection ${cp.maxRequestsPerConnection}`,
      cp.idleTimeoutMs !== undefined && `idle ${cp.idleTimeoutMs / 1000}s`,
    ].filter((x): x is string => typeof x === 'string');
    parts.push(`pool(${limits.join(', ') || 'no limits'})`);
  }
  const od = p.outlierDetection;
  if (od !== undefined) parts.push(`outliers(5xx ${od.consecutive5xx}, gateway ${od.consecutiveGateway}, eject ${od.baseEjectionMs / 1000}s, max ${od.maxEjectionPercent}%)`);
  return parts.join(' ') || 'defaults';
}
