/**
 * A flow record's fields as OpenTelemetry attributes: what the collector's OTLP flow sink puts on
 * each log record and the proxy's tracer on each span, one mapping for both (README.md "Flows in
 * your own stack"). Names follow OpenTelemetry's semantic conventions where one exists.
 */
import type { FlowRecord } from './flow';

export type Attributes = Record<string, string | number | boolean>;

/** Every flow field but `time` (the record's timestamp) and `traceId` (its trace id) as attributes. */
export function flowAttributes(f: FlowRecord): Attributes {
  const a: Attributes = {
    'palisade.node': f.node,
    'palisade.direction': f.direction,
    'palisade.protocol': f.protocol,
    'network.transport': 'tcp',
    'source.address': f.source.ip,
    'destination.address': f.destination.ip,
    'palisade.verdict': f.verdict,
    'palisade.reason': f.reason,
    'palisade.mtls': f.mtls,
    'palisade.bytes_sent': f.bytesSent,
    'palisade.bytes_received': f.bytesReceived,
    'palisade.duration_ms': f.durationMs,
  };
  const s = f.source;
  if (s.port !== undefined) a['source.port'] = s.port;
  if (s.workload !== undefined) a['palisade.source.workload'] = s.workload;
  if (s.namespace !== undefined) a['palisade.source.namespace'] = s.namespace;
  if (s.identity !== undefined) a['palisade.source.principal'] = s.identity;
  if (s.host !== undefined) a['palisade.source.host'] = s.host;
  const d = f.destination;
  if (d.port !== undefined) a['destination.port'] = d.port;
  if (d.workload !== undefined) a['palisade.destination.workload'] = d.workload;
  if (d.namespace !== undefined) a['palisade.destination.namespace'] = d.namespace;
  if (d.identity !== undefined) a['palisade.destination.principal'] = d.identity;
  if (d.host !== undefined) a['server.address'] = d.host;
  if (f.http !== undefined) {
    a['http.request.method'] = f.http.method;
    a['url.path'] = f.http.path;
    a['http.response.status_code'] = f.http.status;
  }
  if (f.policy !== undefined) a['palisade.policy'] = f.policy;
  if (f.rule !== undefined) a['palisade.rule'] = f.rule;
  if (f.audit !== undefined) {
    a['palisade.audit.policy'] = f.audit.policy;
    a['palisade.audit.rule'] = f.audit.rule;
  }
  return a;
}

