/**
 * The access log: one structured pino line per finished connection or HTTP request
 * (`{"event":"flow", …FlowRecord}`), for the workloads that ask for it.
 *
 * A flow belongs to a local workload: its source for outbound and egress flows, its destination
 * for inbound ones. Mode `labeled` (the default) logs the flows of workloads labeled
 * `palisade.dev/access-log: "on"`; `all` logs every flow; `none` logs nothing. The record holds
 * no keys, tokens or header values; a query string (which can carry tokens) is cut from the path.
 */
import type { FlowRecord, FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';

export const ACCESS_LOG_MODES = ['all', 'labeled', 'none'] as const;
export type AccessLogMode = (typeof ACCESS_LOG_MODES)[number];
export const DEFAULT_ACCESS_LOG_MODE: AccessLogMode = 'labeled';
/** The workload label that turns its access log on. */
export const ACCESS_LOG_LABEL = 'palisade.dev/access-log';

/** This node's workloads by IP (LocalWorkloads is one). */
export interface LabeledWorkloads {
  byIp(ip: string): { labels: Record<string, string> } | undefined;
}

export interface AccessLogOptions {
  mode?: AccessLogMode;
  /** Needed for `labeled`: without it, nothing is labeled. */
  workloads?: LabeledWorkloads;
}

export function isAccessLogMode(v: string): v is AccessLogMode {
  return (ACCESS_LOG_MODES as readonly string[]).includes(v);
}

export class AccessLog implements FlowSink {
  private readonly log: Logger;
  readonly mode: AccessLogMode;
  private readonly workloads: LabeledWorkloads | undefined;

  constructor(log: Logger, opts: AccessLogOptions = {}) {
    this.log = log.child({ component: 'access' });
    this.mode = opts.mode ?? DEFAULT_ACCESS_LOG_MODE;
    this.workloads = opts.workloads;
  }

  /** Whether this flow goes to the log. */
  wants(flow: FlowRecord): boolean {
    if (this.mode === 'all') return true;
    if (this.mode === 'none' || !this.workloads) return false;
    const owner = flow.direction === 'inbound' ? flow.destination.ip : flow.source.ip;
    return this.workloads.byIp(owner)?.labels[ACCESS_LOG_LABEL] === 'on';
  }

  record(flow: FlowRecord): void {
    if (!this.wants(flow)) return;
    const q = flow.http ? flow.http.path.indexOf('?') : -1;
    if (q === -1) this.log.info({ event: 'flow', ...flow }, 'flow');
    else this.log.info({ event: 'flow', ...flow, http: { ...flow.http!, path: flow.http!.path.slice(0, q) } }, 'flow');
  }
}
