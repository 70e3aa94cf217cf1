/**
 * A flow record's fields as OpenTelemetry attributes: what the collector's OTLP flow sink puts on
 * each log record and the proxy's tracer on each span, one mapping for both (README.md "Flows in
 * your own stack"). Names follow OpenTelemetry's semantic conventions where one exists.
 */
import type { FlowRecord } from './flow';

export type Attributes = Record<string, string | number | boolean>;

/**
 * OpenTelemetry's `network.transport` of a flow's protocol: `tcp` for TCP, TLS and HTTP, `udp` for
 * a UDP summary; none for DNS (its proxy takes queries over UDP and TCP alike), ICMP, ARP and other
 * packets (the convention has no value for them).
 */
export function networkTransport(protocol: FlowRecord['protocol']): 'tcp' | 'udp' | undefined {
  return protocol === 'tcp' || protocol === 'tls' || protocol === 'http' ? 'tcp' : protocol === 'udp' ? 'udp' : undefined;
}

/**
 * Every flow field but `time` (the record's timestamp) and `traceId` (its trace id), as attribute
 * name and value, in one fixed order: absent fields have no attribute.
 */
export function visitFlowAttributes(f: FlowRecord, put: (key: string, value: string | number | boolean) => void): void {
  put('palisade.node', f.node);
  put('palisade.direction', f.direction);
  put('palisade.protocol', f.protocol);
  const transport = networkTransport(f.protocol);
  if (transport !== undefined) put('network.transport', transport);
  put('source.address', f.source.ip);
  put('destination.address', f.destination.ip);
  put('palisade.verdict', f.verdict);
  put('palisade.reason', f.reason);
  put('palisade.mtls', f.mtls);
  put('palisade.bytes_sent', f.bytesSent);
  put('palisade.bytes_received', f.bytesReceived);
  put('palisade.duration_ms', f.durationMs);
  const s = f.source;
  if (s.port !== undefined) put('source.port', s.port);
  if (s.workload !== undefined) put('palisade.source.workload', s.workload);
  if (s.namespace !== undefined) put('palisade.source.namespace', s.namespace);
  if (s.identity !== undefined) put('palisade.source.principal', s.identity);
  if (s.host !== undefined) put('palisade.source.host', s.host);
  const d = f.destination;
  if (d.port !== undefined) put('destination.port', d.port);
  if (d.workload !== undefined) put('palisade.destination.workload', d.workload);
  if (d.namespace !== undefined) put('palisade.destination.namespace', d.namespace);
  if (d.identity !== undefined) put('palisade.destination.principal', d.identity);
  if (d.host !== undefined) put('server.address', d.host);
  if (f.http !== undefined) {
    put('http.request.method', f.http.method);
    put('url.path', f.http.path);
    put('http.response.status_code', f.http.status);
    if (f.http.grpcStatus !== undefined) put('rpc.grpc.status_code', f.http.grpcStatus);
  }
  if (f.dns !== undefined) {
    put('palisade.dns.type', f.dns.type);
    put('palisade.dns.rcode', f.dns.rcode);
    put('palisade.dns.answers', f.dns.answers.join(','));
  }
  if (f.policy !== undefined) put('palisade.policy', f.policy);
  if (f.rule !== undefined) put('palisade.rule', f.rule);
  if (f.audit !== undefined) {
    put('palisade.audit.policy', f.audit.policy);
    put('palisade.audit.rule', f.audit.rule);
  }
  if (f.count !== undefined) put('palisade.count', f.count);
  if (f.traffic !== undefined) {
    put('palisade.route', f.traffic.route);
    put('palisade.route.rule', f.traffic.rule);
    put('palisade.route.backend', f.traffic.backend);
    put('palisade.route.attempts', f.traffic.attempts);
  }
}

/** The same attributes as one object. */
export function flowAttributes(f: FlowRecord): Attributes {
  const a: Attributes = {};
  visitFlowAttributes(f, (k, v) => (a[k] = v));
  return a;
}
