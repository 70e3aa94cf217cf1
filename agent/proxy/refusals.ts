/**
 * Refused connections at a bounded cost. Every refusal the proxy makes (a policy denial, a limit,
 * an unknown source, a failed upstream) is one of a kind: (direction, source, destination,
 * protocol, verdict, reason, policy, rule). Per interval:
 *
 *   - the first refusal of its kind is logged (one `event: refused` line) and recorded as its own
 *     flow, exactly as a single refusal always was;
 *   - the others of that kind are only counted; when the interval ends each kind with more becomes
 *     ONE flow whose `count` says how many connections it stands for, and one log line
 *     (`event: refusals`) lists the interval's refusals per (direction, source, reason).
 *
 * So the flows' counts add up to the refusals exactly, and a flood costs a few lines and flows
 * per interval instead of a log line and a stored flow per connection (~900 bytes each).
 *
 * Kinds are bounded per interval (`maxKinds`): past that, a refusal folds into its (direction,
 * source, verdict, reason, policy) with destination `*`, and past that again into (direction,
 * verdict, reason) with source `*` too. Folded refusals have no line or flow of their own; they
 * are counted into the summaries, never lost. docs/architecture.md "Limits and refusals".
 */
import type { FlowDirection, FlowEndpoint, FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import { nothingSent, proxyFlow, type FlowOutcome, type FlowRoute } from './proxy-flow';

export const DEFAULT_REFUSAL_INTERVAL_MS = 10_000;
export const DEFAULT_MAX_REFUSAL_KINDS = 256;
/** Groups listed in an interval's log line; the rest are summed in `otherGroups`. */
const MAX_LOGGED_GROUPS = 50;

/** One refused connection, as its listener describes it. */
export interface Refusal {
  route: FlowRoute;
  /** verdict `denied` or `error`, the reason, and the deciding policy when one decided */
  outcome: FlowOutcome;
  /** when the connection was accepted (its flow's duration) */
  started: number;
  /** the message of the first refusal's log line */
  message: string;
  /** more fields for that line (`event`, `reason`, `policy`, `source` and `destination` are set) */
  fields?: Record<string, unknown>;
  level?: 'warn' | 'info';
}

export interface RefusalLogOptions {
  node: string;
  flows: FlowSink;
  log: Logger;
  intervalMs?: number;
  maxKinds?: number;
}

interface Kind {
  /** the route of its summary: the source without its port, endpoints `*` when folded */
  route: FlowRoute;
  outcome: FlowOutcome;
  /** refusals beyond the first (all of them for a folded kind), since the last flush */
  more: number;
  group: Group;
}

interface Group {
  direction: FlowDirection;
  source: string;
  reason: string;
  count: number;
}

/** What the refusal log counted, for metrics: every refusal since start by direction and reason. */
export interface RefusalCount {
  direction: FlowDirection;
  reason: string;
  count: number;
}

const ANY: FlowEndpoint = { ip: '*' };

export class RefusalLog {
  private readonly node: string;
  private readonly flows: FlowSink;
  private readonly log: Logger;
  private readonly maxKinds: number;
  private readonly timer: NodeJS.Timeout;
  private kinds = new Map<string, Kind>();
  private folded = new Map<string, Kind>();
  private groups = new Map<string, Group>();
  private refused = 0;
  private summarized = 0;
  private windowStart = Date.now();
  private readonly totals = new Map<string, RefusalCount>();
  private closed = false;

  constructor(opts: RefusalLogOptions) {
    this.node = opts.node;
    this.flows = opts.flows;
    this.log = opts.log.child({ component: 'refusals' });
    this.maxKinds = opts.maxKinds ?? DEFAULT_MAX_REFUSAL_KINDS;
    const intervalMs = opts.intervalMs ?? DEFAULT_REFUSAL_INTERVAL_MS;
    if (!(intervalMs > 0) || !(Number.isSafeInteger(this.maxKinds) && this.maxKinds >= 1)) {
      throw new RangeError('intervalMs must be positive and maxKinds a whole number of at least 1');
    }
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Count one refused connection; the first of its kind in this interval is logged and recorded. */
  refuse(r: Refusal): void {
    if (this.closed) return;
    this.refused++;
    this.countTotal(r.route.direction, r.outcome.reason);
    const key = kindKey(r.route, r.outcome);
    const seen = this.kinds.get(key);
    if (seen) return this.more(seen);
    if (this.kinds.size < this.maxKinds) {
      const route = { ...r.route, source: withoutPort(r.route.source) };
      const kind: Kind = { route, outcome: r.outcome, more: 0, group: this.group(route, r.outcome) };
      kind.group.count++;
      this.kinds.set(key, kind);
      this.first(r);
      return;
    }
    this.more(this.fold(r.route, r.outcome));
  }

  /** Every refusal since start, by direction and reason. */
  counts(): RefusalCount[] {
    return [...this.totals.values()];
  }

  /**
   * End the interval: one summary flow per kind with refusals beyond its first, and one log line
   * for the interval when there was any.
   */
  flush(): void {
    const end = Date.now();
    if (this.summarized > 0) {
      for (const k of [...this.kinds.values(), ...this.folded.values()]) {
        if (k.more > 0) this.flows.record(proxyFlow(this.node, k.route, k.outcome, { bytesSent: 0, bytesReceived: 0, durationMs: 0 }, k.more));
      }
      const groups = [...this.groups.values()].sort((a, b) => b.count - a.count);
      const listed = groups.slice(0, MAX_LOGGED_GROUPS);
      const otherGroups = groups.slice(MAX_LOGGED_GROUPS).reduce((n, g) => n + g.count, 0);
      this.log.warn(
        {
          event: 'refusals',
          window: { start: new Date(this.windowStart).toISOString(), end: new Date(end).toISOString() },
          refused: this.refused,
          summarized: this.summarized,
          groups: listed,
          ...(otherGroups > 0 ? { otherGroups } : {}),
        },
        'connections refused in the last interval',
      );
    }
    this.kinds = new Map();
    this.folded = new Map();
    this.groups = new Map();
    this.refused = 0;
    this.summarized = 0;
    this.windowStart = end;
  }

  /** Stop the timer and write what is counted; later refusals are not recorded. */
  close(): void {
    if (this.closed) return;
    clearInterval(this.timer);
    this.flush();
    this.closed = true;
  }

  private first(r: Refusal): void {
    const { route, outcome } = r;
    const line = { event: 'refused', reason: outcome.reason, policy: outcome.policy, source: route.source, destination: route.destination, ...r.fields };
    if (r.level === 'info') this.log.info(line, r.message);
    else this.log.warn(line, r.message);
    this.flows.record(proxyFlow(this.node, route, outcome, nothingSent(r.started)));
  }

  private more(k: Kind): void {
    k.more++;
    k.group.count++;
    this.summarized++;
  }

  /** The kind a refusal folds into once the interval's kinds are spent. */
  private fold(route: FlowRoute, outcome: FlowOutcome): Kind {
    const bySource = `${route.direction}\0${route.source.ip}\0${outcome.verdict}\0${outcome.reason}\0${outcome.policy ?? ''}`;
    let k = this.folded.get(bySource);
    if (k) return k;
    if (this.folded.size < this.maxKinds) {
      const folded = { ...route, source: withoutPort(route.source), destination: ANY, http: undefined };
      const o: FlowOutcome = { verdict: outcome.verdict, reason: outcome.reason, policy: outcome.policy };
      k = { route: folded, outcome: o, more: 0, group: this.group(folded, o) };
      this.folded.set(bySource, k);
      return k;
    }
    const byReason = `${route.direction}\0*\0${outcome.verdict}\0${outcome.reason}`;
    k = this.folded.get(byReason);
    if (!k) {
      const folded = { ...route, source: ANY, destination: ANY, http: undefined };
      const o: FlowOutcome = { verdict: outcome.verdict, reason: outcome.reason };
      k = { route: folded, outcome: o, more: 0, group: this.group(folded, o) };
      this.folded.set(byReason, k);
    }
    return k;
  }

  private group(route: FlowRoute, outcome: FlowOutcome): Group {
    const source = sourceName(route.source);
    const key = `${route.direction}\0${source}\0${outcome.reason}`;
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { direction: route.direction, source, reason: outcome.reason, count: 0 }));
    return g;
  }

  private countTotal(direction: FlowDirection, reason: string): void {
    const key = `${direction}\0${reason}`;
    const t = this.totals.get(key);
    if (t) t.count++;
    else this.totals.set(key, { direction, reason, count: 1 });
  }
}

/** What makes two refusals the same kind (the source port never does). */
export function kindKey(route: FlowRoute, outcome: FlowOutcome): string {
  const s = route.source;
  const d = route.destination;
  return [
    route.direction,
    s.ip,
    s.identity ?? '',
    d.ip,
    d.port ?? '',
    d.host ?? '',
    route.protocol,
    route.mtls ? 1 : 0,
    outcome.verdict,
    outcome.reason,
    outcome.policy ?? '',
    outcome.rule ?? '',
  ].join('\0');
}

function withoutPort(e: FlowEndpoint): FlowEndpoint {
  if (e.port === undefined) return e;
  const { port: _port, ...rest } = e;
  return rest;
}

/** `namespace/workload`, or the IP. */
function sourceName(e: FlowEndpoint): string {
  return e.workload ? `${e.namespace ?? ''}/${e.workload}` : e.ip;
}
