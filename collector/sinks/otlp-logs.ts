/**
 * A flow record as an OTLP log record, and a batch of them as one ExportLogsServiceRequest in
 * protobuf (the OpenTelemetry JS serializer, @opentelemetry/otlp-transformer). The mapping, flow
 * field → log record field or attribute, is the table in README.md "Flows in your own stack";
 * `flowAttributes` is that table in code.
 */
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { FlowRecord, FlowVerdict } from '../../common/flow';

type LogRecord = Parameters<typeof ProtobufLogsSerializer.serializeRequest>[0][number];
type Attributes = Record<string, string | number | boolean>;

/** The OTLP severity of each verdict (SeverityNumber INFO, WARN, ERROR). */
const SEVERITY: Record<FlowVerdict, { number: number; text: string }> = {
  allowed: { number: 9, text: 'INFO' },
  audit: { number: 9, text: 'INFO' },
  denied: { number: 13, text: 'WARN' },
  error: { number: 17, text: 'ERROR' },
};

/** The event name every flow log record carries. */
export const FLOW_EVENT_NAME = 'palisade.flow';
export const FLOW_SCOPE = { name: 'palisade.flows', version: '1' } as const;

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

/** `allowed outbound http default/client -> default/web`: what a log viewer shows in one line. */
export function flowBody(f: FlowRecord): string {
  const end = (e: FlowRecord['source']): string => (e.workload !== undefined ? `${e.namespace ?? ''}/${e.workload}` : e.host ?? e.ip);
  return `${f.verdict} ${f.direction} ${f.protocol} ${end(f.source)} -> ${end(f.destination)}`;
}

function hrTime(ms: number): [number, number] {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** Encodes batches of flows for one collector: one resource, one scope, one log record per flow. */
export class FlowLogEncoder {
  private readonly resource: Resource;
  private readonly scope = { ...FLOW_SCOPE };

  constructor(resource: Attributes) {
    this.resource = resourceFromAttributes(resource);
  }

  toLogRecord(f: FlowRecord, observedMs: number): LogRecord {
    const sev = SEVERITY[f.verdict];
    const traceId = (f as { traceId?: string }).traceId;
    return {
      hrTime: hrTime(Date.parse(f.time)),
      hrTimeObserved: hrTime(observedMs),
      severityNumber: sev.number,
      severityText: sev.text,
      body: flowBody(f),
      eventName: FLOW_EVENT_NAME,
      resource: this.resource,
      instrumentationScope: this.scope,
      attributes: flowAttributes(f),
      droppedAttributesCount: 0,
      ...(traceId !== undefined && { spanContext: { traceId, spanId: '0000000000000000', traceFlags: 0 } }),
    } as LogRecord;
  }

  /** One ExportLogsServiceRequest, protobuf. */
  encode(records: readonly FlowRecord[]): Uint8Array {
    const now = Date.now();
    const logs = records.map((r) => this.toLogRecord(r, now));
    return ProtobufLogsSerializer.serializeRequest(logs)!;
  }
}
