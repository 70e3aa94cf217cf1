/**
 * A flow record as an OTLP log record, and a batch of them as one ExportLogsServiceRequest in
 * protobuf. The mapping, flow field → log record field or attribute, is the table in README.md
 * "Flows in your own stack"; common/flow-attributes.ts is that table in code. The protobuf is
 * written here (proto-writer.ts) from fields written once (otlp-log-fields.ts: severities, event
 * name, attribute keys; here: resource, scope), each flow's LogRecord once: from the agents'
 * frames as they arrived (`piece`: read from their bytes by frame-flows.ts and written by
 * otlp-frame.ts, a flow off that path parsed alone) or from records (`records`), and a request
 * around written records (`request`). The OpenTelemetry JS serializer
 * (@opentelemetry/otlp-transformer), measured at ~36 us per flow, would cost the collector more
 * than its ingest; it is the oracle of the golden test (test/harness/otlp-logs-oracle.ts: same
 * records → the same decoded request under the official definitions), and is not loaded here.
 */
import type { FlowEncoder, FlowPiece } from './otlp-batch';
import { FrameFlowReader, type FlowView } from './frame-flows';
import { EVENT_NAME_FIELD, keyField, SEVERITY_FIELDS } from './otlp-log-fields';
import { writeFrameFlow } from './otlp-frame';
import { ProtoWriter, varintLength, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT } from './proto-writer';
import type { FlowRecord } from '../../common/flow';
import { visitFlowAttributes, type Attributes } from '../../common/flow-attributes';

export { FLOW_EVENT_NAME, FLOW_SCOPE, SEVERITY } from './otlp-log-fields';
import { FLOW_SCOPE } from './otlp-log-fields';

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

/** Encodes flows for one collector: one resource, one scope, one log record per flow. */
export class FlowLogEncoder implements FlowEncoder {
  private readonly w = new ProtoWriter();
  private readonly head = new ProtoWriter();
  private readonly one = new ProtoWriter();
  private readonly reader = new FrameFlowReader();
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

  /** One ExportLogsServiceRequest of `records`, protobuf, in one piece (a copy: the encoder's own bytes are written over next). */
  encode(records: readonly FlowRecord[], observedMs = Date.now()): Uint8Array {
    this.begin();
    const observed = this.observed(observedMs);
    for (const f of records) this.writeRecord(f, observed);
    return Buffer.concat(this.request());
  }

  begin(): void {
    this.w.reset();
  }

  /**
   * A piece of an agent's frame: its flows (of the frame's `flows` array), observed when stored,
   * written from the frame's bytes (otlp-frame.ts); a flow the reader leaves is parsed alone, a
   * frame it cannot walk is parsed whole. The same bytes as `encode` for the same flows.
   */
  piece(p: FlowPiece): void {
    const frame = Buffer.from(p.frame.buffer, p.frame.byteOffset, p.frame.byteLength);
    const w = this.w;
    const at = w.pos;
    const observed = this.observed(p.storedMs);
    try {
      const read = this.reader.read(frame, p.skip, p.count, (view: FlowView | undefined, start: number, end: number) => {
        if (view !== undefined) writeFrameFlow(w, frame, view, observed);
        else this.writeRecord(JSON.parse(frame.toString('utf8', start, end)) as FlowRecord, observed);
      });
      if (read) return;
      w.pos = at;
      const flows = (JSON.parse(frame.toString('utf8')) as { flows?: unknown }).flows;
      if (!Array.isArray(flows) || flows.length < p.skip + p.count) throw new Error('the frame does not hold the flows it was stored with');
      for (let i = p.skip; i < p.skip + p.count; i++) this.writeRecord(flows[i] as FlowRecord, observed);
    } catch (err) {
      w.pos = at;
      throw err;
    }
  }

  /**
   * One ExportLogsServiceRequest around the log_records written since `begin`: its head (the
   * request's, resource's and scope's fields), then those bytes, not copied.
   */
  request(): Uint8Array[] {
    const recordBytes = this.w.pos;
    const scopeLogs = this.scopeField.length + recordBytes;
    const resourceLogs = this.resourceField.length + 1 + varintLength(scopeLogs) + scopeLogs;
    const w = this.head;
    w.reset();
    w.tag(1, WIRE_LEN); // ExportLogsServiceRequest.resource_logs
    w.varint(resourceLogs);
    w.raw(this.resourceField);
    w.tag(2, WIRE_LEN); // ResourceLogs.scope_logs
    w.varint(scopeLogs);
    w.raw(this.scopeField);
    return [w.finish(), this.w.view(0, recordBytes)];
  }

  release(): void {
    this.w.detach();
  }

  /** LogRecord.observed_time_unix_nano, the same for every record of a call. */
  private observed(ms: number): Uint8Array {
    const w = this.one;
    w.reset();
    w.tag(11, WIRE_FIXED64);
    w.fixed64Ms(ms);
    return w.finish();
  }

  /** One flow as a ScopeLogs.log_records field. */
  private writeRecord(f: FlowRecord, observed: Uint8Array): void {
    const w = this.w;
    const lr = w.begin(2);
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
  }
}
