/**
 * What a DestinationRule's trafficPolicy makes of one routed request to one backend Service
 * port (router.ts asks): how its endpoint is chosen (balance.ts), whether its answers eject
 * (outlierDetection, ejections.ts), and its place in the Service's bulkhead (connectionPool,
 * bulkhead.ts): now, after a wait, or refused (503 / gRPC UNAVAILABLE, flag UO, reason
 * `upstream-overflow`). One per node proxy; its bulkheads and round-robin counters are per
 * Service port, forgotten when the Service leaves the registry.
 */
import type { ConnectionPool, DestinationPolicy, OutlierDetection } from '../../common/routes';
import { hashValue, pickOf, type HashInput, type Pick } from './balance';
import { Bulkhead, type BulkheadLimits, type Release } from './bulkhead';
import { hashCookieHeader, hashCookieValue } from './hash-cookie';
import type { UpstreamReuse } from '../proxy/http';

/** How long a request waits for room in a full bulkhead before it is refused. */
export const MAX_QUEUE_WAIT_MS = 10_000;
const MAX_SERVICES = 10_000;

export interface RequestPolicy {
  /** the DestinationRule, `namespace/name` */
  readonly rule: string;
  readonly pick: Pick | undefined;
  readonly outlier: OutlierDetection | undefined;
  readonly connectTimeoutMs: number | undefined;
  /** a place for one more retry in progress, or undefined */
  readonly retrySlot: (() => Release | undefined) | undefined;
  /** connectionPool.http's maxRequestsPerConnection and idleTimeout for the upstream connections, when set */
  readonly reuse: UpstreamReuse | undefined;
  /** a header for the answer: the hash cookie made for a request without one (consistentHash.httpCookie.ttl) */
  readonly responseHeader: [string, string] | undefined;
}

/** The request's place: now (its release), later, or refused. */
export type Place = { readonly kind: 'now'; readonly release: Release | undefined } | { readonly kind: 'queued'; readonly ready: Promise<Release | undefined> } | { readonly kind: 'overflow' };

/** The bulkhead limits of a pool for requests over HTTP/1.1 (one request per connection at a time) or HTTP/2. */
export function limitsOf(pool: ConnectionPool, proto: 'h1' | 'h2'): BulkheadLimits {
  return {
    maxActive: proto === 'h1' ? Math.min(pool.maxRequests, pool.maxConnections) : pool.maxRequests,
    maxPending: pool.maxPendingRequests,
    maxRetries: pool.maxRetries,
  };
}

export class DestinationPolicies {
  private readonly bulkheads = new Map<string, Bulkhead>();
  private readonly turns = new Map<string, number>();

  constructor(
    private readonly outstanding: (key: string) => number,
    private readonly random: () => number = Math.random,
  ) {}

  /** requests refused for want of room, every Service */
  get overflowed(): number {
    let n = 0;
    for (const b of this.bulkheads.values()) n += b.overflowed;
    return n;
  }

  /**
   * The request's policy under `dp`, and its place in the Service port's bulkhead. `connection`:
   * the client's connection (`ip:port`), what a hash cookie made for it is derived from.
   */
  forRequest(dp: DestinationPolicy, service: string, proto: 'h1' | 'h2', req: HashInput, connection = req.sourceIp): { policy: RequestPolicy; place: Place } {
    const p = dp.policy;
    const lb = p.loadBalancer;
    let hashed = lb?.kind === 'HASH' ? hashValue(lb, req) : undefined;
    let responseHeader: [string, string] | undefined;
    if (hashed === undefined && lb?.kind === 'HASH' && lb.by === 'cookie' && lb.cookieTtlMs !== undefined) {
      hashed = hashCookieValue(connection, service);
      responseHeader = hashCookieHeader(lb, hashed);
    }
    const pick = pickOf(lb, service, hashed, {
      turn: (s) => this.turn(s),
      outstanding: this.outstanding,
      random: this.random,
    });
    const pool = p.connectionPool;
    const bulkhead = pool === undefined ? undefined : this.bulkhead(`${service}>${proto}`);
    const limits = pool === undefined ? undefined : limitsOf(pool, proto);
    const policy: RequestPolicy = {
      rule: dp.rule,
      pick,
      outlier: p.outlierDetection,
      connectTimeoutMs: pool?.connectTimeoutMs,
      retrySlot: bulkhead && limits && (() => bulkhead.tryRetry(limits)),
      reuse: pool === undefined || (pool.maxRequestsPerConnection === 0 && pool.idleTimeoutMs === undefined) ? undefined : { maxRequests: pool.maxRequestsPerConnection, idleMs: pool.idleTimeoutMs },
      responseHeader,
    };
    if (bulkhead === undefined || limits === undefined) return { policy, place: { kind: 'now', release: undefined } };
    const a = bulkhead.admit(limits);
    return { policy, place: a };
  }

  /** Forget the state of Services `known` says are gone. */
  prune(known: (service: string) => boolean): void {
    for (const k of this.bulkheads.keys()) if (!known(k.slice(0, k.indexOf(':')))) this.bulkheads.delete(k);
    for (const k of this.turns.keys()) if (!known(k.slice(0, k.indexOf(':')))) this.turns.delete(k);
  }

  private bulkhead(key: string): Bulkhead {
    let b = this.bulkheads.get(key);
    if (b === undefined) {
      if (this.bulkheads.size >= MAX_SERVICES) this.bulkheads.clear();
      b = new Bulkhead(MAX_QUEUE_WAIT_MS);
      this.bulkheads.set(key, b);
    }
    return b;
  }

  private turn(service: string): number {
    const t = this.turns.get(service) ?? 0;
    if (this.turns.size >= MAX_SERVICES && !this.turns.has(service)) this.turns.clear();
    this.turns.set(service, (t + 1) % 1_000_000_007);
    return t;
  }
}
