/**
 * A flow record as the collector accepts it, the plain way: known fields are copied in a fixed
 * order (fields the proxy may add for its own use, and undefined values, are left out), counts
 * are kept whole numbers (flowRecord() already rounds durations; this guards the wire), the copy
 * is checked with the collector's own `flowProblem` and written by JSON.stringify. One record
 * the collector would refuse must not cost the whole batch, and a refused batch would be resent
 * forever.
 *
 * This is the reference: wire.ts's encodeFlow writes the same bytes faster and hands every record
 * it cannot vouch for to this one (which also names the problem); a golden test holds the two
 * to identical output.
 */
import { flowProblem, type FlowEndpoint, type FlowRecord } from '../../common/flow';

export type EncodedFlow = { json: string; problem?: undefined } | { json?: undefined; problem: string };

export function encodeFlowChecked(flow: FlowRecord): EncodedFlow {
  let wire: FlowRecord;
  try {
    wire = wireRecord(flow);
  } catch {
    return { problem: 'not a flow record' };
  }
  const problem = flowProblem(wire);
  if (problem) return { problem };
  return { json: JSON.stringify(wire) };
}

function wireRecord(f: FlowRecord): FlowRecord {
  const w: FlowRecord = {
    time: f.time,
    node: f.node,
    direction: f.direction,
    source: endpoint(f.source),
    destination: endpoint(f.destination),
    protocol: f.protocol,
    verdict: f.verdict,
    reason: f.reason,
    mtls: f.mtls,
    bytesSent: whole(f.bytesSent),
    bytesReceived: whole(f.bytesReceived),
    durationMs: whole(f.durationMs),
  };
  if (f.http !== undefined) w.http = f.http.grpcStatus === undefined ? { method: f.http.method, path: f.http.path, status: f.http.status } : { method: f.http.method, path: f.http.path, status: f.http.status, grpcStatus: f.http.grpcStatus };
  if (f.dns !== undefined) w.dns = { type: f.dns.type, rcode: f.dns.rcode, answers: [...f.dns.answers] };
  if (f.policy !== undefined) w.policy = f.policy;
  if (f.rule !== undefined) w.rule = f.rule;
  if (f.audit !== undefined) w.audit = { policy: f.audit.policy, rule: f.audit.rule };
  if (f.count !== undefined) w.count = f.count;
  if (f.traceId !== undefined) w.traceId = f.traceId;
  if (f.traffic !== undefined) w.traffic = { route: f.traffic.route, rule: f.traffic.rule, backend: f.traffic.backend, attempts: f.traffic.attempts };
  return w;
}

function endpoint(e: FlowEndpoint): FlowEndpoint {
  const out: FlowEndpoint = { ip: e.ip };
  if (e.port !== undefined) out.port = e.port;
  if (e.workload !== undefined) out.workload = e.workload;
  if (e.namespace !== undefined) out.namespace = e.namespace;
  if (e.identity !== undefined) out.identity = e.identity;
  if (e.host !== undefined) out.host = e.host;
  return out;
}

/** Non-negative finite numbers rounded to whole; anything else is left for flowProblem to refuse. */
function whole(n: number): number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.round(n) : n;
}
