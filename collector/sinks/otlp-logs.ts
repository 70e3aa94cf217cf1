/**
 * A flow record as an OTLP log record, and a batch of them as one ExportLogsServiceRequest in
 * protobuf. The mapping, flow field → log record field or attribute, is the table in README.md
 * "Flows in your own stack"; common/flow-attributes.ts is that table in code. The protobuf is
 * written here (proto-writer.ts), each flow's LogRecord once, as it is stored (`records`: what the
 * sink keeps), from fields written once (resource, scope, severities, event name, attribute keys),
 * and a request around waiting records (`request`). The OpenTelemetry JS serializer
 * (@opentelemetry/otlp-transformer), measured at ~36 us per flow, would cost the collector more
 * than its ingest; it is the oracle of the golden test (test/harness/otlp-logs-oracle.ts: same
 * records → the same decoded request under the official definitions), and is not loaded here.
 */
import type { FlowEncoder, FlowPiece } from './otlp-batch';
import { ProtoWriter, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT } from './proto-writer';
import type { FlowRecord, FlowVerdict } from '../../common/flow';
import { visitFlowAttributes, type Attributes } from '../../common/flow-attributes';

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

/** `allowed outbound http default/client -> default/web`: what a log viewer shows in one line. */
export function flowBody(f: FlowRecord): string {
  const end = (e: FlowRecord['source']): string => (e.workload !== undefined ? `${e.namespace ?? ''}/${e.workload}` : e.host ?? e.ip);
  return `${f.verdict} ${f.direction} ${f.protocol} ${end(f.source)} -> ${end(f.destination)}`;
}

/** flowBody as an AnyValue's string_value, written piece by piece (no string built per flow). */
function writeBody(w: ProtoWriter, f: FlowRecord): void {
  const s = w.begin(1);
  w.text(f.verdict);
  w.text(' ');
  w.text(f.direction);
  w.text(' ');
  w.text(f.protocol);
  w.text(' ');
  writeEnd(w, f.source);
  w.text(' -> ');
  writeEnd(w, f.destination);
  w.end(s);
}

function writeEnd(w: ProtoWriter, e: FlowRecord['source']): void {
  if (e.workload !== undefined) {
    if (e.namespace !== undefined) w.text(e.namespace);
    w.text('/');
    w.text(e.workload);
  } else w.text(e.host ?? e.ip);
}

function varintSize(v: number): number {
  let n = 1;
  while (v > 127) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
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

/** Attributes whose values rarely repeat: written each time, never kept. */
const UNIQUE_VALUES: ReadonlySet<string> = new Set(['source.address', 'destination.address', 'url.path', 'palisade.dns.answers']);
/** Values kept per attribute name at most (workloads, identities, policies, verdicts repeat). */
const MAX_CACHED_VALUES = 4096;

/**
 * Writes attribute after attribute as a repeated KeyValue field (string, bool, int for whole
 * numbers, else double, as the OpenTelemetry serializer does). The whole field of a string or
 * bool value is kept once written and copied the next time the same name has the same value.
 */
class AttributeWriter {
  /** per attribute name: its fields by value, or null (values that do not repeat) */
  private readonly cache = new Map<string, Map<string, Uint8Array> | null>();
  private readonly one = new ProtoWriter();

  constructor(
    private readonly w: ProtoWriter,
    private readonly field: number,
  ) {}

  readonly put = (k: string, v: string | number | boolean): void => {
    if (typeof v === 'number') return this.write(this.w, k, v);
    let values = this.cache.get(k);
    if (values === undefined) {
      values = UNIQUE_VALUES.has(k) ? null : new Map();
      this.cache.set(k, values);
    }
    if (values === null) return this.write(this.w, k, v);
    const key = typeof v === 'string' ? v : v ? '\u0000true' : '\u0000false';
    let b = values.get(key);
    if (b === undefined) {
      this.one.reset();
      this.write(this.one, k, v);
      b = this.one.finish();
      if (values.size < MAX_CACHED_VALUES) values.set(key, b);
    }
    this.w.raw(b);
  };

  private write(w: ProtoWriter, k: string, v: string | number | boolean): void {
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
  }
}

function writeAttributes(w: ProtoWriter, field: number, attrs: Attributes): void {
  const a = new AttributeWriter(w, field);
  for (const k in attrs) a.put(k, attrs[k]!);
}

/** Fields 2 and 3 of a LogRecord (severity number and text) for each verdict, written once. */
const SEVERITY_FIELDS = Object.fromEntries(
  Object.entries(SEVERITY).map(([v, sev]) => {
    const w = new ProtoWriter();
    w.tag(2, WIRE_VARINT);
    w.varint(sev.number);
    w.string(3, sev.text);
    return [v, w.finish()];
  }),
) as Record<FlowVerdict, Uint8Array>;

/** LogRecord.event_name, written once. */
const EVENT_NAME_FIELD = ((): Uint8Array => {
  const w = new ProtoWriter();
  w.string(12, FLOW_EVENT_NAME);
  return w.finish();
})();

/** Encodes flows for one collector: one resource, one scope, one log record per flow. */
export class FlowLogEncoder implements FlowEncoder {
  private readonly w = new ProtoWriter();
  private readonly head = new ProtoWriter();
  /** LogRecord.attributes */
  private readonly attrs = new AttributeWriter(this.w, 6);
  /** ResourceLogs.resource and ScopeLogs.scope, written once */
  private readonly resourceField: Uint8Array;
  private readonly scopeField: Uint8Array;

  constructor(resource: Attributes) {
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

  /** One ExportLogsServiceRequest, protobuf, written here, in one piece. */
  encode(records: readonly FlowRecord[], observedMs = Date.now()): Uint8Array {
    return Buffer.concat(this.request([this.records(records, observedMs).bytes]));
  }

  /** A piece of an agent's frame: its flows (of the frame's `flows` array) as `records` writes them, observed when stored. */
  piece(p: FlowPiece): Uint8Array {
    const text = Buffer.from(p.frame.buffer, p.frame.byteOffset, p.frame.byteLength).toString('utf8');
    const flows = (JSON.parse(text) as { flows?: unknown }).flows;
    if (!Array.isArray(flows) || flows.length < p.skip + p.count) throw new Error('the frame does not hold the flows it was stored with');
    return this.records(flows.slice(p.skip, p.skip + p.count) as FlowRecord[], p.storedMs).bytes;
  }

  /**
   * Each flow as a ScopeLogs.log_records field (a LogRecord), one after another, observed now:
   * what the sink keeps until it sends them, and where each ends.
   */
  records(records: readonly FlowRecord[], observedMs = Date.now()): { bytes: Uint8Array; ends: Uint32Array } {
    const w = this.w;
    w.reset();
    const ends = new Uint32Array(records.length);
    // LogRecord.observed_time_unix_nano, the same for every record of the call
    w.tag(11, WIRE_FIXED64);
    w.fixed64Ms(observedMs);
    const observed = w.finish();
    w.reset();
    for (let i = 0; i < records.length; i++) {
      const f = records[i]!;
      const lr = w.begin(2); // ScopeLogs.log_records
      w.tag(1, WIRE_FIXED64);
      w.fixed64Ms(Date.parse(f.time));
      w.raw(SEVERITY_FIELDS[f.verdict]);
      const body = w.begin(5);
      writeBody(w, f);
      w.end(body);
      visitFlowAttributes(f, this.attrs.put);
      const traceId = (f as { traceId?: string }).traceId;
      if (traceId !== undefined) {
        w.tag(8, WIRE_FIXED32);
        w.fixed32(1);
        w.bytes(9, Buffer.from(traceId, 'hex'));
      }
      w.raw(observed);
      w.raw(EVENT_NAME_FIELD);
      w.end(lr);
      ends[i] = w.pos;
    }
    return { bytes: w.finish(), ends };
  }

  /**
   * One ExportLogsServiceRequest around log_records fields written by `records`, in order: its
   * head (the request's, resource's and scope's fields) followed by the parts, not copied.
   */
  request(parts: readonly Uint8Array[]): Uint8Array[] {
    let recordBytes = 0;
    for (const p of parts) recordBytes += p.length;
    const scopeLogs = this.scopeField.length + recordBytes;
    const resourceLogs = this.resourceField.length + 1 + varintSize(scopeLogs) + scopeLogs;
    const w = this.head;
    w.reset();
    w.tag(1, WIRE_LEN); // ExportLogsServiceRequest.resource_logs
    w.varint(resourceLogs);
    w.raw(this.resourceField);
    w.tag(2, WIRE_LEN); // ResourceLogs.scope_logs
    w.varint(scopeLogs);
    w.raw(this.scopeField);
    return [w.finish(), ...parts];
  }
}
