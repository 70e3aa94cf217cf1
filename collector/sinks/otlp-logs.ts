/**
 * A flow record as an OTLP log record, and a batch of them as one ExportLogsServiceRequest in
 * protobuf. The mapping, flow field → log record field or attribute, is the table in README.md
 * "Flows in your own stack"; common/flow-attributes.ts is that table in code. `encode` writes the protobuf
 * itself (proto-writer.ts): the OpenTelemetry JS serializer (@opentelemetry/otlp-transformer),
 * measured at ~36 us per flow, would cost the collector more than its ingest. That serializer
 * stays as `encodeChecked`, the oracle of the golden test (same records → the same decoded
 * request under the official definitions).
 */
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { ProtoWriter, WIRE_FIXED32, WIRE_FIXED64, WIRE_VARINT } from './proto-writer';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { FlowRecord, FlowVerdict } from '../../common/flow';
import { flowAttributes, visitFlowAttributes, type Attributes } from '../../common/flow-attributes';

type LogRecord = Parameters<typeof ProtobufLogsSerializer.serializeRequest>[0][number];

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

/** `allowed outbound http default/client -> default/web`: what a log viewer shows in one line. */
export function flowBody(f: FlowRecord): string {
  const end = (e: FlowRecord['source']): string => (e.workload !== undefined ? `${e.namespace ?? ''}/${e.workload}` : e.host ?? e.ip);
  return `${f.verdict} ${f.direction} ${f.protocol} ${end(f.source)} -> ${end(f.destination)}`;
}

function hrTime(ms: number): [number, number] {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** A KeyValue's key field (tag, length, UTF-8), made once per attribute name. */
const keyFields = new Map<string, Uint8Array>();

function keyField(key: string): Uint8Array {
  let b = keyFields.get(key);
  if (b === undefined) {
    const w = new ProtoWriter();
    w.string(1, key);
    b = w.finish();
    if (keyFields.size < 1024) keyFields.set(key, b);
  }
  return b;
}

/** Writes attribute after attribute as a repeated KeyValue field (string, bool, int for whole numbers, else double, as the OpenTelemetry serializer does). */
class AttributeWriter {
  field = 0;
  constructor(private readonly w: ProtoWriter) {}

  readonly put = (k: string, v: string | number | boolean): void => {
    const w = this.w;
    const kv = w.begin(this.field);
    w.raw(keyField(k));
    const any = w.begin(2);
    if (typeof v === 'string') w.string(1, v);
    else if (typeof v === 'boolean') {
      w.tag(2, WIRE_VARINT);
      w.varint(v ? 1 : 0);
    } else if (Number.isInteger(v)) {
      w.tag(3, WIRE_VARINT);
      w.int64(v);
    } else {
      w.tag(4, WIRE_FIXED64);
      w.double(v);
    }
    w.end(any);
    w.end(kv);
  };
}

function writeAttributes(w: ProtoWriter, field: number, attrs: Attributes): void {
  const a = new AttributeWriter(w);
  a.field = field;
  for (const k in attrs) a.put(k, attrs[k]!);
}

const NS_PER_MS = 1_000_000n;

/** Encodes batches of flows for one collector: one resource, one scope, one log record per flow. */
export class FlowLogEncoder {
  private readonly resource: Resource;
  private readonly scope = { ...FLOW_SCOPE };
  private readonly w = new ProtoWriter();
  private readonly attrs = new AttributeWriter(this.w);
  /** ResourceLogs.resource and ScopeLogs.scope, written once */
  private readonly resourceField: Uint8Array;
  private readonly scopeField: Uint8Array;

  constructor(resource: Attributes) {
    this.resource = resourceFromAttributes(resource);
    const w = new ProtoWriter();
    const r = w.begin(1);
    writeAttributes(w, 1, resource);
    w.end(r);
    this.resourceField = w.finish();
    w.reset();
    const sc = w.begin(1);
    w.string(1, FLOW_SCOPE.name);
    w.string(2, FLOW_SCOPE.version);
    w.end(sc);
    this.scopeField = w.finish();
  }

  /** One ExportLogsServiceRequest, protobuf, written here. */
  encode(records: readonly FlowRecord[], observedMs = Date.now()): Uint8Array {
    const w = this.w;
    w.reset();
    const observed = BigInt(observedMs) * NS_PER_MS;
    const rl = w.begin(1); // ExportLogsServiceRequest.resource_logs
    w.raw(this.resourceField);
    const sl = w.begin(2); // ResourceLogs.scope_logs
    w.raw(this.scopeField);
    for (let i = 0; i < records.length; i++) {
      const f = records[i]!;
      const sev = SEVERITY[f.verdict];
      const lr = w.begin(2); // ScopeLogs.log_records
      w.tag(1, WIRE_FIXED64);
      w.fixed64(BigInt(Date.parse(f.time)) * NS_PER_MS);
      w.tag(2, WIRE_VARINT);
      w.varint(sev.number);
      w.string(3, sev.text);
      const body = w.begin(5);
      w.string(1, flowBody(f));
      w.end(body);
      this.attrs.field = 6;
      visitFlowAttributes(f, this.attrs.put);
      const traceId = (f as { traceId?: string }).traceId;
      if (traceId !== undefined) {
        w.tag(8, WIRE_FIXED32);
        w.fixed32(1);
        w.bytes(9, Buffer.from(traceId, 'hex'));
      }
      w.tag(11, WIRE_FIXED64);
      w.fixed64(observed);
      w.string(12, FLOW_EVENT_NAME);
      w.end(lr);
    }
    w.end(sl);
    w.end(rl);
    return w.finish();
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
      ...(traceId !== undefined && { spanContext: { traceId, traceFlags: 1 } }),
    } as LogRecord;
  }

  /** The same request through the OpenTelemetry JS serializer (the golden test's oracle). */
  encodeChecked(records: readonly FlowRecord[], observedMs = Date.now()): Uint8Array {
    const logs = records.map((r) => this.toLogRecord(r, observedMs));
    return ProtobufLogsSerializer.serializeRequest(logs)!;
  }
}
