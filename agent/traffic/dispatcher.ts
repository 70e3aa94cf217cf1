/**
 * One routed request's attempts (the HTTP front's Dispatch): which endpoint of the chosen
 * backend Service each attempt goes to (power of two choices over peak-EWMA, never the same
 * endpoint twice), and whether an outcome is retried:
 *   - implicitly, whatever the method, when the attempt provably never reached the application
 *     (no connection: refused, the tunnel could not be opened), or when a reused keep-alive
 *     connection was reset before answering an idempotent request;
 *   - explicitly, per the rule's retry (its codes; 504 also for a backend timeout), at most its
 *     attempts;
 * never when the destination refused the client (its policy, its limits: refusal.ts): that is the
 * answer, and it says nothing of the endpoint (not ejected, no latency sample).
 * Endpoints ejected for being unreachable (ejections.ts) are passed over while another one is
 * left (none left: they are tried anyway, as Envoy's panic threshold does).
 * Retries go always only to an endpoint not tried yet, a body that can be sent again (64 KiB kept), and
 * room in the retry budget. Explicit retries wait a jittered backoff: from the rule's backoff
 * (25 ms by default) up to twice it, doubling per retry, at most 250 ms.
 */
import type { AttemptOutcome, AttemptRefusal, Dispatch, UpstreamTarget } from '../proxy/http';
import { MAX_BACKOFF_MS, type RouteRule } from '../../common/routes';
import type { OutlierDetection } from '../../common/routes';
import type { Pick } from './balance';
import { ejectionsHonoured, type Ejections } from './ejections';
import type { PeakEwma } from './peak-ewma';
import type { RetryBudget } from './retry-budget';

export const REPLAY_BYTES = 64 * 1024;
const MAX_IMPLICIT_RETRIES = 3;
/** what a failed attempt counts as in the latency estimate, at least */
const FAILURE_PENALTY_MS = 1000;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

export interface DispatchInputs {
  readonly rule: RouteRule;
  readonly method: string;
  /** the ready endpoints of the chosen backend, at its target port */
  readonly endpoints: readonly Endpoint[];
  /** their keys (keyOf), made once per registry change of the service (router.ts); made here when not given */
  readonly keys?: readonly string[];
  readonly balancer: PeakEwma;
  readonly budget: RetryBudget;
  readonly ejections?: Ejections;
  /** an injected delay before the first attempt */
  readonly delayMs?: number;
  /** a DestinationRule's loadBalancer (balance.ts); undefined, or undefined from it: peak-EWMA */
  readonly pick?: Pick;
  /** a DestinationRule's outlierDetection: 5xx answers eject too */
  readonly outlier?: OutlierDetection;
  /** a place for one more retry in progress (connectionPool.http.maxRetries): its release, or undefined */
  readonly retrySlot?: () => (() => void) | undefined;
  /** called once when the request is over (its connectionPool place is given back) */
  readonly onFinish?: () => void;
  /** headers to add to the answer from endpoint `e` (a sticky session's cookie) */
  readonly responseHeaders?: (e: Endpoint) => readonly (readonly [string, string])[] | undefined;
  /** the upstream for an endpoint (pool name and how to connect) */
  target(e: Endpoint): UpstreamTarget;
  readonly random?: () => number;
}

export class RequestDispatch implements Dispatch {
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly replayBytes: number;
  readonly delayMs: number;
  /** attempts sent */
  attempts = 0;
  /** retries, and the outcome each retry followed (`503`, `ECONNREFUSED`…) */
  readonly retried: string[] = [];
  /** the endpoint of the last attempt */
  endpoint: Endpoint | undefined;
  /** the destination refused the last attempt (its policy, its limit): the request's answer */
  refusal: AttemptRefusal | undefined;
  /** indices of the endpoints tried (a request makes at most a few attempts) */
  private readonly tried = new Set<number>();
  private readonly keys: readonly string[];
  private current: string | undefined;
  private started = 0;
  private finished = false;
  private readonly retrySlots: (() => void)[] = [];

  constructor(private readonly d: DispatchInputs) {
    this.keys = d.keys ?? d.endpoints.map(keyOf);
    this.timeoutMs = d.rule.requestTimeoutMs;
    this.attemptTimeoutMs = d.rule.backendTimeoutMs;
    this.replayBytes = REPLAY_BYTES;
    this.delayMs = d.delayMs ?? 0;
    d.budget.request();
  }

  next(): UpstreamTarget | undefined {
    const i = this.choose();
    if (i === undefined) return undefined;
    const key = this.keys[i]!;
    const e = this.d.endpoints[i]!;
    this.tried.add(i);
    this.d.balancer.start(key);
    this.current = key;
    this.started = performance.now();
    this.endpoint = e;
    this.attempts++;
    return this.d.target(e);
  }

  responseHeaders(): readonly (readonly [string, string])[] | undefined {
    return this.endpoint === undefined ? undefined : this.d.responseHeaders?.(this.endpoint);
  }

  settle(o: AttemptOutcome, replayable: boolean): number | undefined {
    const key = this.current;
    if (o.refusal !== undefined) {
      // the destination's answer to this client, not the endpoint's health: nothing ejected, no latency sample, no retry
      if (key !== undefined) this.d.balancer.cancel(key);
      this.current = undefined;
      this.refusal = o.refusal;
      return undefined;
    }
    if (key !== undefined && this.d.ejections !== undefined) {
      if (o.status !== 0) this.d.ejections.answered(key, o.status, this.d.outlier, this.d.outlier && this.keys);
      else if (!o.connected) this.d.ejections.connectFailed(key, this.d.outlier, this.d.outlier && this.keys);
    }
    // latency only, as Linkerd's: a quick 5xx is a quick answer; a failure to answer at all costs more, at once
    if (o.status === 0) this.endCurrent(Math.max(o.ms, FAILURE_PENALTY_MS), true);
    else this.endCurrent(o.ms);
    const wait = this.retryWait(o);
    if (wait === undefined || !replayable || this.tried.size >= this.keys.length || !this.d.budget.tryRetry()) return undefined;
    if (this.d.retrySlot !== undefined) {
      const slot = this.d.retrySlot();
      if (slot === undefined) return undefined;
      this.retrySlots.push(slot);
    }
    this.retried.push(o.status === 0 ? (o.error ?? 'failed') : String(o.status));
    return wait;
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.current !== undefined) this.endCurrent(performance.now() - this.started);
    for (const release of this.retrySlots.splice(0)) release();
    this.d.onFinish?.();
  }

  private retryWait(o: AttemptOutcome): number | undefined {
    const implicit = this.retried.length < MAX_IMPLICIT_RETRIES && o.status === 0 && (!o.connected || (o.reused && o.error === 'ECONNRESET' && IDEMPOTENT.has(this.d.method)));
    if (implicit) return 0;
    const retry = this.d.rule.retry;
    if (retry === undefined || this.retried.length >= retry.attempts) return undefined;
    const code = o.status !== 0 ? o.status : o.error === 'backend-timeout' ? 504 : undefined;
    if (code === undefined || !retry.codes.has(code)) return undefined;
    const random = this.d.random ?? Math.random;
    // a backoff above the cap is clamped at parse (with a warning); clamped here too, whatever built the rule
    const base = Math.min(retry.backoffMs, MAX_BACKOFF_MS);
    const cap = Math.min(MAX_BACKOFF_MS, base * 2 ** (this.retried.length + 1));
    return Math.round(base + random() * (cap - base));
  }

  /**
   * The index of the next attempt's endpoint, or undefined when every one was tried. A first
   * attempt while no endpoint is ejected picks among the precomputed keys as they are (no work
   * per endpoint); otherwise the untried ones, the healthy among them if any.
   */
  private choose(): number | undefined {
    const n = this.keys.length;
    if (this.tried.size >= n) return undefined;
    const ej = this.d.ejections;
    const pick = this.d.pick;
    if (this.tried.size === 0 && (ej === undefined || !ej.anyEjected())) {
      if (pick === undefined) return this.d.balancer.pickIndex(this.keys);
      return pick(this.keys, this.all()) ?? this.d.balancer.pickIndex(this.keys);
    }
    const untried: number[] = [];
    const healthy: number[] = [];
    let ejected = 0;
    for (let i = 0; i < n; i++) {
      if (ej !== undefined && ej.ejected(this.keys[i]!)) ejected++;
      else if (!this.tried.has(i)) healthy.push(i);
      if (!this.tried.has(i)) untried.push(i);
    }
    // Istio's minHealthPercent: too few healthy endpoints, and ejections are set aside
    const honoured = this.d.outlier === undefined || ejectionsHonoured(n - ejected, n, this.d.outlier.minHealthPercent);
    const among = healthy.length > 0 && honoured ? healthy : untried;
    const chosen = pick?.(this.keys, among);
    if (chosen !== undefined) return chosen;
    const j = this.d.balancer.pickIndex(among.map((i) => this.keys[i]!));
    return j === undefined ? undefined : among[j];
  }

  /** every endpoint's index, made once per endpoint set size */
  private all(): readonly number[] {
    return allIndices(this.keys.length);
  }

  private endCurrent(ms: number, failed = false): void {
    if (this.current === undefined) return;
    if (failed) this.d.balancer.fail(this.current, ms);
    else this.d.balancer.end(this.current, ms);
    this.current = undefined;
  }
}

export const keyOf = (e: Endpoint): string => `${e.ip}:${e.port}`;

const indices: number[][] = [];
/** [0, 1, …, n − 1], shared */
export function allIndices(n: number): readonly number[] {
  if (n > 4096) return Array.from({ length: n }, (_, i) => i);
  return (indices[n] ??= Array.from({ length: n }, (_, i) => i));
}
