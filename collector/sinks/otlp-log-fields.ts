/**
 * The parts of a flow's OTLP LogRecord that never change, written once: severities, the event
 * name, attribute keys. Shared by the two ways a flow is written: from a FlowRecord object
 * (otlp-logs.ts) and straight from an agent frame's JSON bytes (otlp-frame.ts).
 */
import type { FlowVerdict } from '../../common/flow';
import { ProtoWriter, WIRE_VARINT } from './proto-writer';

/** The OTLP severity of each verdict (SeverityNumber INFO, WARN, ERROR). */
export const SEVERITY: Record<FlowVerdict, { number: number; text: string }> = {
  allowed: { number: 9, text: 'INFO' },
  audit: { number: 9, text: 'INFO' },
  denied: { number: 13, text: 'WARN' },
  error: { number: 17, text: 'ERROR' },
};

/** The event name every flow log record carries. */
export const FLOW_EVENT_NAME = 'palisade.flow';
export const FLOW_SCOPE = { name: 'palisade.flows', version: '1' } as const;

/** Fields 2 and 3 of a LogRecord (severity number and text) for each verdict, written once. */
export const SEVERITY_FIELDS = Object.fromEntries(
  Object.entries(SEVERITY).map(([v, sev]) => {
    const w = new ProtoWriter();
    w.tag(2, WIRE_VARINT);
    w.varint(sev.number);
    w.string(3, sev.text);
    return [v, w.finish()];
  }),
) as Record<FlowVerdict, Uint8Array>;

/** LogRecord.event_name, written once. */
export const EVENT_NAME_FIELD = ((): Uint8Array => {
  const w = new ProtoWriter();
  w.string(12, FLOW_EVENT_NAME);
  return w.finish();
})();

/** A KeyValue's key field (tag, length, UTF-8), made once per attribute name. */
const keyFields = new Map<string, Uint8Array>();

export function keyField(key: string): Uint8Array {
  let b = keyFields.get(key);
  if (b === undefined) {
    const w = new ProtoWriter();
    w.string(1, key);
    b = w.finish();
    if (keyFields.size < 1024) keyFields.set(key, b);
  }
  return b;
}
