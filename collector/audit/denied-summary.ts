/**
 * Denied flows go to the audit log as summaries, not one record each: flows the agents report
 * as `denied` are counted per (source, destination, reason, policy) for a window, and every
 * `intervalMs` one `denied-flows` record holds the window's groups. At most `maxGroups` groups
 * are kept per window; flows of groups beyond that still count in `total` and in `dropped`, so a
 * flood of distinct denials is never lost silently. A window with no denied flow writes nothing.
 */
import { isIPv6 } from 'node:net';
import type { FlowEndpoint, FlowRecord } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { AuditLog } from './audit-log';

export const DEFAULT_SUMMARY_INTERVAL_MS = 10_000;
export const DEFAULT_SUMMARY_MAX_GROUPS = 1000;
/** Longest text kept in a group's fields (agents may send up to 4 KiB). */
const MAX_FIELD = 256;

export interface DeniedSummaryOptions {
  /** How often a summary is written (default 10 s). */
  intervalMs?: number;
  /** Groups kept per window (default 1000). */
  maxGroups?: number;
  /** Clock for the window's bounds (tests). */
  now?: () => number;
  /** Where a failed timed flush is reported (its counts are kept for the next one). */
  log?: Logger;
}

export interface DeniedGroup {
  source: string;
  destination: string;
  reason: string;
  /** The deciding policy, when one decided. */
  policy?: string;
  count: number;
}

const clip = (s: string): string => (s.length > MAX_FIELD ? `${s.slice(0, MAX_FIELD)}…` : s);

/** `namespace/workload`, or the IP. */
function sourceName(e: FlowEndpoint): string {
  return e.workload ? `${e.namespace ?? ''}/${e.workload}` : e.ip;
}

/** `namespace/workload`, or the host asked for, or `ip:port`. */
function destinationName(e: FlowEndpoint): string {
  if (e.workload) return `${e.namespace ?? ''}/${e.workload}`;
  if (e.host) return e.host;
  if (e.port === undefined) return e.ip;
  return isIPv6(e.ip) ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

export class DeniedFlowSummarizer {
  private readonly intervalMs: number;
  private readonly maxGroups: number;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private groups = new Map<string, DeniedGroup>();
  private total = 0;
  private dropped = 0;
  private windowStart: number;
  private closed = false;

  constructor(
    private readonly audit: Pick<AuditLog, 'append'>,
    private readonly opts: DeniedSummaryOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_SUMMARY_INTERVAL_MS;
    this.maxGroups = opts.maxGroups ?? DEFAULT_SUMMARY_MAX_GROUPS;
    this.now = opts.now ?? Date.now;
    if (!(this.intervalMs > 0) || !(Number.isSafeInteger(this.maxGroups) && this.maxGroups >= 0)) {
      throw new RangeError('intervalMs must be positive and maxGroups a whole number');
    }
    this.windowStart = this.now();
    this.timer = setInterval(() => {
      try {
        this.flush();
      } catch (err) {
        this.opts.log?.error({ err }, 'cannot write the denied-flow summary to the audit log');
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Count `flow` if it was denied (a packet summary counts as the packets it stands for). */
  add(flow: FlowRecord): void {
    if (this.closed || flow.verdict !== 'denied') return;
    // An agent's refusal summary stands for `count` denied connections, a packet summary for `count` packets.
    const n = flow.count ?? 1;
    this.total += n;
    const source = clip(sourceName(flow.source));
    const destination = clip(destinationName(flow.destination));
    const reason = clip(flow.reason);
    const policy = flow.policy === undefined ? undefined : clip(flow.policy);
    const key = JSON.stringify([source, destination, reason, policy ?? null]);
    const group = this.groups.get(key);
    if (group) group.count += n;
    else if (this.groups.size < this.maxGroups) this.groups.set(key, { source, destination, reason, policy, count: n });
    else this.dropped += n;
  }

  /**
   * Write the window's summary (one `denied-flows` record) if any flow was denied, and start a
   * new window. When the append throws, the counts stay for the next flush.
   */
  flush(): void {
    const end = this.now();
    if (this.total === 0) {
      this.windowStart = end;
      return;
    }
    // most flows first; ties in key order, so the same counts always make the same record
    const keyed = [...this.groups.entries()].sort(([ka, a], [kb, b]) => b.count - a.count || (ka < kb ? -1 : ka > kb ? 1 : 0));
    const groups = keyed.map(([, g]) => g);
    this.audit.append('denied-flows', 'collector', {
      window: { start: new Date(this.windowStart).toISOString(), end: new Date(end).toISOString() },
      groups,
      total: this.total,
      dropped: this.dropped,
    });
    this.groups = new Map();
    this.total = 0;
    this.dropped = 0;
    this.windowStart = end;
  }

  /** Stop the timer and write what is counted; later flows are ignored. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.flush();
  }
}
