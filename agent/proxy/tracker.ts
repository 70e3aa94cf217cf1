/**
 * Established connections, so a policy change can close the ones it now denies. Each entry
 * re-decides itself against the new policies (a pure check) and says whether it may stay.
 */
import type { MeshTracer } from '../tracing/tracer';
import type { Duplex } from 'node:stream';
import type { FlowEndpoint, FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { PolicyIndex } from '../../common/policy';
import type { HttpLimits } from './http';
import type { ProxyLimits } from './limits';
import { ProxyClosure } from './proxy-closure';

/** What every policy-enforcing part of the proxy (destination authz, egress) is built from. */
export interface EnforcementInputs {
  node: string;
  /** the policies in force now (replaced on every change) */
  policies: { readonly index: PolicyIndex };
  flows: FlowSink;
  tracker: ConnectionTracker;
  log: Logger;
  connectTimeoutMs: number;
  /** How long to wait for a client's first bytes when a decision needs its protocol or name. */
  sniffTimeoutMs: number;
  httpLimits?: Partial<HttpLimits>;
  /** traces HTTP requests when set (`--trace-otlp`) */
  tracer?: MeshTracer;
  /** the sniff budget, idle timeouts of spliced connections, and where refusals are reported */
  limits: Pick<ProxyLimits, 'sniff' | 'timeouts' | 'refusals'>;
}

export interface TrackedConnection {
  /** undefined: may stay; a string: the reason it is now denied (the policy that denies it) */
  recheck(index: PolicyIndex): { reason: string; policy?: string; rule?: number } | undefined;
  /** close it now: nothing more reaches the destination; its flow records `why` */
  close(why: ProxyClosure): void;
}

/** A verdict as a tracked connection's recheck answer: undefined while allowed. */
export function denial(v: { allowed: boolean; reason: string; policy?: string; rule?: number }): { reason: string; policy?: string; rule?: number } | undefined {
  if (v.allowed) return undefined;
  return { reason: v.reason, ...(v.policy ? { policy: v.policy } : {}), ...(v.rule !== undefined ? { rule: v.rule } : {}) };
}

/** An established connection to close, with one warn line, when a policy change denies it. */
export interface PolicedConnection {
  recheck: TrackedConnection['recheck'];
  /** for the log line */
  source: FlowEndpoint;
  destination: FlowEndpoint;
  /** the log line's message */
  message: string;
  /** destroyed when it is denied: nothing more reaches the destination */
  streams: readonly Duplex[];
}

/** Track `c` until the returned function is called (when it ends by itself). */
export function closeWhenDenied(tracker: ConnectionTracker, log: Logger, c: PolicedConnection): () => void {
  return tracker.add({
    recheck: c.recheck,
    close: (why) => {
      if (why.outcome.verdict === 'denied') log.warn({ event: 'closed-by-policy', ...why.outcome, source: c.source, destination: c.destination }, c.message);
      for (const s of c.streams) s.destroy(why);
    },
  });
}

export class ConnectionTracker {
  private readonly live = new Set<TrackedConnection>();

  add(c: TrackedConnection): () => void {
    this.live.add(c);
    return () => this.live.delete(c);
  }

  get size(): number {
    return this.live.size;
  }

  /** Returns how many connections were closed. */
  recheckAll(index: PolicyIndex): number {
    let closed = 0;
    for (const c of [...this.live]) {
      const denied = c.recheck(index);
      if (!denied) continue;
      this.live.delete(c);
      c.close(new ProxyClosure({ verdict: 'denied', ...denied }));
      closed += 1;
    }
    return closed;
  }

  /** Close every tracked connection with `why` (the drain deadline); returns how many. */
  closeAll(why: ProxyClosure): number {
    const all = [...this.live];
    this.live.clear();
    for (const c of all) c.close(why);
    return all.length;
  }
}
