/**
 * Every refusal of proof-before-identity is an audit record (`trust-refusal`): a refused join or
 * node certificate, a refused session takeover, workloads refused at registration, a refused
 * certificate request, a refused API caller, a session closed for a malformed frame. The caller
 * logs its one warn line; this writes the record.
 *
 * Hostile peers can make refusals as fast as they can connect, and every record is a synced
 * SQLite write: at most `burst` records are written per `intervalMs` window, one each; refusals
 * beyond that are counted per (event, reason) and written as one summary record when the window
 * ends, with how many there were. None is lost silently.
 */
import type { Logger } from '../../common/log';
import type { AuditLog } from './audit-log';

export type TrustEvent = 'join' | 'node-certificate' | 'takeover' | 'registration' | 'csr' | 'api' | 'protocol';

export interface TrustRefusal {
  event: TrustEvent;
  reason: string;
  node?: string;
  /** The peer's address (`unix` on the Unix socket). */
  remote?: string;
  /** More about what was refused (plain data, small). */
  detail?: Record<string, unknown>;
}

export interface TrustRefusalOptions {
  intervalMs?: number;
  /** Records written one by one per window before refusals are only counted. */
  burst?: number;
  now?: () => number;
  log?: Logger;
}

export const DEFAULT_REFUSAL_INTERVAL_MS = 10_000;
export const DEFAULT_REFUSAL_BURST = 50;
/** Distinct (event, reason) groups kept in a summary; further ones count in `dropped`. */
const MAX_GROUPS = 200;
const MAX_TEXT = 256;

const clip = (s: string): string => (s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s);
/** Audit actors are printable ASCII without spaces. */
const actorOf = (r: TrustRefusal): string => (r.node !== undefined ? `node:${r.node}` : `remote:${(r.remote ?? 'unknown').replace(/[^\x21-\x7e]/g, '?').slice(0, 100)}`);

export class TrustRefusals {
  private readonly intervalMs: number;
  private readonly burst: number;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private written = 0;
  private windowStart: number;
  private groups = new Map<string, { event: TrustEvent; reason: string; count: number }>();
  private counted = 0;
  private dropped = 0;
  private closed = false;

  constructor(
    private readonly audit: Pick<AuditLog, 'append'> | undefined,
    private readonly opts: TrustRefusalOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_REFUSAL_INTERVAL_MS;
    this.burst = opts.burst ?? DEFAULT_REFUSAL_BURST;
    this.now = opts.now ?? Date.now;
    this.windowStart = this.now();
    this.timer = setInterval(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Record one refusal (one record, or a count in this window's summary). */
  refused(r: TrustRefusal): void {
    if (this.closed || !this.audit) return;
    if (this.written < this.burst) {
      this.written++;
      const data = {
        event: r.event,
        reason: clip(r.reason),
        ...(r.node === undefined ? {} : { node: r.node }),
        ...(r.remote === undefined ? {} : { remote: clip(r.remote) }),
        ...(r.detail === undefined ? {} : { detail: r.detail }),
      };
      this.append(actorOf(r), data);
      return;
    }
    this.counted++;
    const key = `${r.event}\0${clip(r.reason)}`;
    const group = this.groups.get(key);
    if (group) group.count++;
    else if (this.groups.size < MAX_GROUPS) this.groups.set(key, { event: r.event, reason: clip(r.reason), count: 1 });
    else this.dropped++;
  }

  /** End the window: write the summary of what was only counted, if anything was. */
  flush(): void {
    const end = this.now();
    if (this.counted > 0) {
      const groups = [...this.groups.values()].sort((a, b) => b.count - a.count);
      this.append('collector', {
        event: 'summary',
        window: { start: new Date(this.windowStart).toISOString(), end: new Date(end).toISOString() },
        recorded: this.written,
        counted: this.counted,
        groups,
        dropped: this.dropped,
      });
    }
    this.written = 0;
    this.counted = 0;
    this.dropped = 0;
    this.groups = new Map();
    this.windowStart = end;
  }

  close(): void {
    if (this.closed) return;
    clearInterval(this.timer);
    this.flush();
    this.closed = true;
  }

  private append(actor: string, data: Record<string, unknown>): void {
    try {
      this.audit?.append('trust-refusal', actor, data);
    } catch (err) {
      this.opts.log?.error({ err }, 'cannot write a trust refusal to the audit log');
    }
  }
}
