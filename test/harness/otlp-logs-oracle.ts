/**
 * The OTLP flow sink's oracle: the same flows as an ExportLogsServiceRequest written by the
 * OpenTelemetry JS serializer (@opentelemetry/otlp-transformer), built from the flows as objects
 * with the same mapping (common/flow-attributes.ts). The golden test decodes both with the
 * official definitions and compares them (collector/sinks/otlp-logs.ts writes its own).
 */
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { flowBody, FLOW_EVENT_NAME, FLOW_SCOPE, SEVERITY } from '../../collector/sinks/otlp-logs';
import type { FlowRecord } from '../../common/flow';
import { flowAttributes, type Attributes } from '../../common/flow-attributes';

type LogRecord = Parameters<typeof ProtobufLogsSerializer.serializeRequest>[0][number];

function hrTime(ms: number): [number, number] {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** `records` observed at `observedMs` under `resource`, through the OpenTelemetry serializer. */
export function oracleLogsRequest(resource: Attributes, records: readonly FlowRecord[], observedMs: number): Uint8Array {
  const res = resourceFromAttributes(resource);
  const scope = { ...FLOW_SCOPE };
  const logs = records.map((f) => {
    const sev = SEVERITY[f.verdict];
    const traceId = (f as { traceId?: string }).traceId;
    return {
      hrTime: hrTime(Date.parse(f.time)),
      hrTimeObserved: hrTime(observedMs),
      severityNumber: sev.number,
      severityText: sev.text,
      body: flowBody(f),
      eventName: FLOW_EVENT_NAME,
      resource: res,
      instrumentationScope: scope,
      attributes: flowAttributes(f),
      droppedAttributesCount: 0,
      ...(traceId !== undefined && { spanContext: { traceId, traceFlags: 1 } }),
    } as LogRecord;
  });
  return ProtobufLogsSerializer.serializeRequest(logs)!;
}
