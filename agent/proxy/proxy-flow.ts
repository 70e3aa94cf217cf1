/**
 * The flow records of the proxy's listeners, built one way: a decision becomes an outcome
 * (verdict, reason, policy, rule, audit), an HTTP exchange's record gives its outcome, counts and
 * request line, and every record goes through common/flow's flowRecord (one field order).
 */
import { flowRecord, verdictOf, type FlowDirection, type FlowEndpoint, type FlowProtocol, type FlowRecord, type FlowVerdict } from '../../common/flow';
import { flowAttributes } from '../../common/flow-attributes';
import type { MeshTracer } from '../tracing/tracer';
import { errorCode } from './connect';
import type { HttpRecord } from './http';
import { ProxyClosure } from './proxy-closure';

/** The verdict fields of a flow record. */
export type FlowOutcome = Pick<FlowRecord, 'verdict' | 'reason' | 'policy' | 'rule' | 'audit'>;

/** Bytes each way and how long it lasted. */
export type FlowCounts = Pick<FlowRecord, 'bytesSent' | 'bytesReceived' | 'durationMs'>;

/** Who talked to whom, how: everything of a flow but its outcome and counts. */
export interface FlowRoute {
  direction: FlowDirection;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  protocol: FlowProtocol;
  mtls: boolean;
  http?: FlowRecord['http'];
  dns?: FlowRecord['dns'];
}

/** A decision that explains itself (an authorization or egress verdict). */
export interface Decision {
  allowed: boolean;
  reason: string;
  policy?: string;
  rule?: number;
  audit?: { policy: string; rule: number };
  /** the verdict when it is not a policy's: a refusal by the mesh itself (a fault abort, no route) is an `error` */
  verdict?: FlowVerdict;
}

/** `count`: how many refused connections the record stands for (a refusal summary), when more than one. */
export function proxyFlow(node: string, route: FlowRoute, outcome: FlowOutcome, counts: FlowCounts, count?: number, traffic?: FlowRecord['traffic']): FlowRecord {
  return flowRecord({
    node,
    direction: route.direction,
    source: route.source,
    destination: route.destination,
    protocol: route.protocol,
    http: route.http,
    dns: route.dns,
    verdict: outcome.verdict,
    reason: outcome.reason,
    policy: outcome.policy,
    rule: outcome.rule,
    audit: outcome.audit,
    mtls: route.mtls,
    bytesSent: counts.bytesSent,
    bytesReceived: counts.bytesReceived,
    durationMs: counts.durationMs,
    count,
    traffic,
  });
}

/** A decision as a flow outcome. */
export function outcomeOf(d: Decision): FlowOutcome {
  return { verdict: d.verdict ?? verdictOf(d), reason: d.reason, policy: d.policy, rule: d.rule, audit: d.audit };
}

/**
 * How a spliced connection ended: the proxy's own closure (policy change, drain deadline) says
 * why; another error makes it an error with its code; a clean end keeps the decision.
 */
export function endOutcome(d: Decision, err: Error | undefined): FlowOutcome {
  if (err instanceof ProxyClosure) return { ...outcomeOf(d), policy: undefined, rule: undefined, ...err.outcome };
  return err ? { ...outcomeOf(d), verdict: 'error', reason: errorCode(err) } : outcomeOf(d);
}

/** A connection refused or failed before any byte went through. */
export function nothingSent(started: number): FlowCounts {
  return { bytesSent: 0, bytesReceived: 0, durationMs: Date.now() - started };
}

/**
 * One HTTP exchange's outcome: the decision authorize returned (the front echoes it in the
 * record), or the front's own refusal before any decision; an error after it (upstream failed,
 * connection reset) makes it an error with that reason.
 */
export function httpOutcome(r: HttpRecord): FlowOutcome {
  const d = r.decision as Partial<Decision> | undefined;
  const decided: FlowOutcome = d && typeof d.reason === 'string' ? outcomeOf(d as Decision) : { verdict: 'denied', reason: r.rejected ?? 'bad-request' };
  return r.error ? { ...decided, verdict: 'error', reason: r.error } : decided;
}

export function httpCounts(r: HttpRecord): FlowCounts {
  return { bytesSent: r.bytesSent, bytesReceived: r.bytesReceived, durationMs: r.durationMs };
}

export function httpLine(r: HttpRecord): FlowRecord['http'] {
  return r.grpcStatus === undefined ? { method: r.method, path: r.path, status: r.status } : { method: r.method, path: r.path, status: r.status, grpcStatus: r.grpcStatus };
}

/**
 * An HTTP flow with its trace: whether the hop's spans are exported is decided first (most hops
 * are not: nothing more is built for them); when they are, they go to the tracer with the flow's
 * fields as their attributes, and the flow carries the trace id (a trace id names spans queued for
 * export, not delivered: README.md "Tracing").
 */
export function traced(tracer: MeshTracer | undefined, flow: FlowRecord, r: HttpRecord): FlowRecord {
  if (tracer === undefined || r.trace === undefined) return flow;
  const denied = flow.verdict === 'denied';
  if (!tracer.wants(r.trace, r.status, denied, flow.source.identity ?? flow.source.ip)) return flow;
  const endMs = Date.parse(flow.time);
  const startMs = endMs - r.durationMs;
  const queued = tracer.export(r.trace, {
    name: r.method || 'HTTP',
    startMs,
    endMs,
    ...(r.forwardedAfterMs !== undefined && { upstreamStartMs: startMs + r.forwardedAfterMs }),
    status: r.status,
    denied,
    attributes: flowAttributes(flow),
  });
  if (queued) flow.traceId = r.trace.traceId;
  return flow;
}
