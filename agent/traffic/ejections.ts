/**
 * Outlier detection. Its first rule, always on: an endpoint that could not be reached at all (no
 * connection: refused, unreachable, the tunnel could not be opened) is ejected, for 100 ms after
 * its first such failure in a row and twice as long after each next one, at most 60 s.
 * Its second, per a DestinationRule's outlierDetection (Istio's meaning and defaults): an endpoint
 * that answers `consecutive5xx` 5xx in a row (or `consecutiveGateway` 502/503/504 in a row) is
 * ejected for baseEjectionTime × the times it was ejected (at most 300 s, as Envoy's
 * max_ejection_time; the multiplier drops by one per `interval` it spends admitted), unless
 * `maxEjectionPercent` of its Service's endpoints are ejected already (one always may be, as
 * Envoy); under it a connect failure counts as a gateway error too (connectFailed: the HTTP path
 * and the L4 one, l4-balancer.ts). Another answer readmits it and forgets its failures in a row. One per node proxy:
 * every client pod's traffic ejects and readmits together. Pure but for the clock it is given.
 */
import type { OutlierDetection } from '../../common/routes';

export const FIRST_EJECTION_MS = 100;
export const MAX_EJECTION_MS = 60_000;
/** Envoy's max_ejection_time default: an answer-based ejection lasts at most this long. */
export const MAX_OUTLIER_EJECTION_MS = 300_000;
/** Endpoints remembered at most: past it those not ejected now are forgotten first, then all (counted). */
export const MAX_ENTRIES = 4096;

interface Entry {
  /** connect failures in a row */
  failures: number;
  until: number;
  /** 5xx answers in a row */
  fives: number;
  /** 502/503/504 in a row */
  gateway: number;
  /** answer-based ejections so far (the multiplier of baseEjectionTime) */
  ejections: number;
  /** when the last answer-based ejection ended (its multiplier decays from then) */
  ejectedUntil: number;
}

export class Ejections {
  private readonly entries = new Map<string, Entry>();
  /** when the last ejection ends: before it some endpoint may be ejected */
  private latest = 0;
  /** endpoints readmitted before their time because MAX_ENTRIES was reached */
  readmittedByOverflow = 0;
  /** ejections by a DestinationRule's outlierDetection (its answers, and connect failures counted as gateway errors) */
  ejectedForAnswers = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** `key` could not be reached: ejected for longer each time in a row. Returns the ejection in ms. */
  unreachable(key: string): number {
    const e = this.entry(key);
    e.failures++;
    const ms = Math.min(MAX_EJECTION_MS, FIRST_EJECTION_MS * 2 ** (e.failures - 1));
    this.eject(e, ms);
    return ms;
  }

  /** Whether any endpoint may be ejected now (false: no endpoint needs to be looked up). */
  anyEjected(): boolean {
    return this.entries.size > 0 && this.now() < this.latest;
  }

  /**
   * `key` answered `status`. Without `od`, or an answer that is not an error it counts: readmitted,
   * its failures forgotten. With `od`: a 5xx counts towards an ejection, decided among `peers`
   * (the keys of its Service's endpoints). Returns the ejection in ms, or 0.
   */
  answered(key: string, status = 200, od?: OutlierDetection, peers?: readonly string[]): number {
    const five = status >= 500 && status <= 599;
    if (od === undefined || !five || (od.consecutive5xx === 0 && od.consecutiveGateway === 0)) {
      const e = this.entries.get(key);
      if (e === undefined) return 0;
      if (e.ejections === 0) this.entries.delete(key);
      else Object.assign(e, { failures: 0, until: 0, fives: 0, gateway: 0 });
      return 0;
    }
    const e = this.entry(key);
    e.failures = 0;
    return this.countError(key, e, status >= 502 && status <= 504, od, peers ?? [key], this.now() < e.until);
  }

  /**
   * `key` could not be connected to: ejected with backoff (unreachable), and under `od` the failure
   * counts as a gateway error (Envoy's meaning of a connect failure when local-origin errors are
   * not split), so `od`'s consecutive counts eject it for baseEjectionTime. Returns the ejection in ms.
   */
  connectFailed(key: string, od?: OutlierDetection, peers?: readonly string[]): number {
    const ms = this.unreachable(key);
    if (od === undefined || (od.consecutive5xx === 0 && od.consecutiveGateway === 0)) return ms;
    return Math.max(ms, this.countError(key, this.entry(key), true, od, peers ?? [key], false));
  }

  /** One 5xx (a gateway error when `gateway`) in a row of `key`'s; at od's count, ejected unless `ejectedNow`. Returns the ejection in ms, or 0. */
  private countError(key: string, e: Entry, gateway: boolean, od: OutlierDetection, peers: readonly string[], ejectedNow: boolean): number {
    e.fives++;
    e.gateway = gateway ? e.gateway + 1 : 0;
    const trip = (od.consecutive5xx > 0 && e.fives >= od.consecutive5xx) || (od.consecutiveGateway > 0 && e.gateway >= od.consecutiveGateway);
    const now = this.now();
    if (!trip || ejectedNow || !this.roomToEject(key, od, peers)) return 0;
    // the multiplier drops by one per interval spent admitted since the last ejection ended
    const decayed = e.ejections === 0 ? 0 : Math.max(0, e.ejections - Math.floor(Math.max(0, now - e.ejectedUntil) / od.intervalMs));
    e.ejections = decayed + 1;
    e.fives = 0;
    e.gateway = 0;
    const ms = Math.min(MAX_OUTLIER_EJECTION_MS, Math.max(od.baseEjectionMs * e.ejections, od.baseEjectionMs));
    this.eject(e, ms);
    e.ejectedUntil = e.until;
    this.ejectedForAnswers++;
    return ms;
  }

  ejected(key: string): boolean {
    const e = this.entries.get(key);
    return e !== undefined && this.now() < e.until;
  }

  /** Below maxEjectionPercent of `peers` ejected (at least one always may be). */
  private roomToEject(key: string, od: OutlierDetection, peers: readonly string[]): boolean {
    let ejected = 0;
    for (const p of peers) if (p !== key && this.ejected(p)) ejected++;
    if (ejected === 0) return true;
    return ((ejected + 1) * 100) / Math.max(1, peers.length) <= od.maxEjectionPercent;
  }

  private entry(key: string): Entry {
    let e = this.entries.get(key);
    if (e === undefined) {
      if (this.entries.size >= MAX_ENTRIES) this.overflow(this.now());
      e = { failures: 0, until: 0, fives: 0, gateway: 0, ejections: 0, ejectedUntil: 0 };
      this.entries.set(key, e);
    }
    return e;
  }

  private eject(e: Entry, ms: number): void {
    // a connect failure's backoff and an outlier ejection together: the longer holds
    e.until = Math.max(e.until, this.now() + ms);
    this.latest = Math.max(this.latest, e.until);
  }

  /** Full: forget the endpoints whose ejection has ended (and their failures in a row); if none, every one, counted. */
  private overflow(now: number): void {
    for (const [k, e] of this.entries) if (e.until <= now) this.entries.delete(k);
    if (this.entries.size < MAX_ENTRIES) return;
    this.readmittedByOverflow += this.entries.size;
    this.entries.clear();
  }
}

/**
 * Whether ejections are honoured for a Service now: Istio's minHealthPercent — below that share
 * of healthy endpoints, outlier detection stands aside and every endpoint is used. Pure.
 */
export function ejectionsHonoured(healthy: number, total: number, minHealthPercent: number): boolean {
  return minHealthPercent === 0 || total === 0 || (healthy * 100) / total >= minHealthPercent;
}
