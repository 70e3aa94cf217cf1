/**
 * A flow read from an agent frame's bytes (frame-flows.ts) as an OTLP LogRecord, the same bytes
 * otlp-logs.ts writes from the flow as an object: its strings copied from the frame as they are,
 * the attributes in the order common/flow-attributes.ts visits them (the README.md "Flows in your
 * own stack" table). The sink's worker writes every flow this way; the golden test holds both
 * ways to the OpenTelemetry serializer's request. Written here, not through protobufjs or the SDK:
 * it is the sink's hot path (the serializer measured ~36 us per flow, this ~1-2 us).
 */
import { FLOW_PROTOCOLS } from '../../common/flow';
import { networkTransport } from '../../common/flow-attributes';
import { N, O, S, VERDICTS, type FlowView } from './frame-flows';
import { same } from './json-bytes';
import { EVENT_NAME_FIELD, keyField, SEVERITY_FIELDS } from './otlp-log-fields';
import { ProtoWriter, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN } from './proto-writer';

const K = {
  node: keyField('palisade.node'),
  direction: keyField('palisade.direction'),
  protocol: keyField('palisade.protocol'),
  sourceAddress: keyField('source.address'),
  destinationAddress: keyField('destination.address'),
  verdict: keyField('palisade.verdict'),
  reason: keyField('palisade.reason'),
  mtls: keyField('palisade.mtls'),
  bytesSent: keyField('palisade.bytes_sent'),
  bytesReceived: keyField('palisade.bytes_received'),
  durationMs: keyField('palisade.duration_ms'),
  sourcePort: keyField('source.port'),
  sourceWorkload: keyField('palisade.source.workload'),
  sourceNamespace: keyField('palisade.source.namespace'),
  sourcePrincipal: keyField('palisade.source.principal'),
  sourceHost: keyField('palisade.source.host'),
  destinationPort: keyField('destination.port'),
  destinationWorkload: keyField('palisade.destination.workload'),
  destinationNamespace: keyField('palisade.destination.namespace'),
  destinationPrincipal: keyField('palisade.destination.principal'),
  serverAddress: keyField('server.address'),
  method: keyField('http.request.method'),
  path: keyField('url.path'),
  status: keyField('http.response.status_code'),
  grpcStatus: keyField('rpc.grpc.status_code'),
  dnsType: keyField('palisade.dns.type'),
  dnsRcode: keyField('palisade.dns.rcode'),
  dnsAnswers: keyField('palisade.dns.answers'),
  policy: keyField('palisade.policy'),
  rule: keyField('palisade.rule'),
  auditPolicy: keyField('palisade.audit.policy'),
  auditRule: keyField('palisade.audit.rule'),
  count: keyField('palisade.count'),
  route: keyField('palisade.route'),
  routeRule: keyField('palisade.route.rule'),
  routeBackend: keyField('palisade.route.backend'),
  routeAttempts: keyField('palisade.route.attempts'),
};

/** `network.transport` = `value`, the whole attribute, written once. */
function transportField(value: 'tcp' | 'udp'): Uint8Array {
  const w = new ProtoWriter();
  const kv = w.begin(6);
  w.raw(keyField('network.transport'));
  const any = w.begin(2);
  w.string(1, value);
  w.end(any);
  w.end(kv);
  return w.finish();
}
/** By a flow's protocol text (common/flow-attributes.ts networkTransport): its whole attribute, or none. */
const TRANSPORTS: readonly { protocol: Buffer; field: Uint8Array }[] = FLOW_PROTOCOLS.flatMap((p) => {
  const t = networkTransport(p);
  return t === undefined ? [] : [{ protocol: Buffer.from(p, 'latin1'), field: transportField(t) }];
});

/** The `network.transport` attribute of the flow whose protocol text is `b[at, end)`; no string made. */
function transportOf(b: Buffer, at: number, end: number): Uint8Array | undefined {
  for (const t of TRANSPORTS) if (same(t.protocol, b, at, end)) return t.field;
  return undefined;
}

const SEVERITY_BY_VERDICT = VERDICTS.map((v) => SEVERITY_FIELDS[v]);
const traceId = new Uint8Array(16);

/** The flow in `v` (read from `b`) as a ScopeLogs.log_records field, observed as `observed` says. */
export function writeFrameFlow(w: ProtoWriter, b: Buffer, v: FlowView, observed: Uint8Array): void {
  const s = v.s;
  const n = v.n;
  const lr = w.begin(2);
  w.tag(1, WIRE_FIXED64);
  w.fixed64Ms(v.timeMs);
  w.raw(SEVERITY_BY_VERDICT[v.verdict]!);
  writeBody(w, b, v);
  str(w, b, s, K.node, S.node);
  str(w, b, s, K.direction, S.direction);
  str(w, b, s, K.protocol, S.protocol);
  const transport = transportOf(b, s[2 * S.protocol]!, s[2 * S.protocol + 1]!);
  if (transport !== undefined) w.raw(transport);
  str(w, b, s, K.sourceAddress, S.srcIp);
  str(w, b, s, K.destinationAddress, S.dstIp);
  str(w, b, s, K.verdict, S.verdict);
  str(w, b, s, K.reason, S.reason);
  bool(w, K.mtls, n[N.mtls]!);
  int(w, K.bytesSent, n[N.bytesSent]!);
  int(w, K.bytesReceived, n[N.bytesReceived]!);
  int(w, K.durationMs, n[N.durationMs]!);
  if (n[N.srcPort]! >= 0) int(w, K.sourcePort, n[N.srcPort]!);
  if (s[2 * S.srcWorkload]! >= 0) str(w, b, s, K.sourceWorkload, S.srcWorkload);
  if (s[2 * S.srcNamespace]! >= 0) str(w, b, s, K.sourceNamespace, S.srcNamespace);
  if (s[2 * S.srcIdentity]! >= 0) str(w, b, s, K.sourcePrincipal, S.srcIdentity);
  if (s[2 * S.srcHost]! >= 0) str(w, b, s, K.sourceHost, S.srcHost);
  if (n[N.dstPort]! >= 0) int(w, K.destinationPort, n[N.dstPort]!);
  if (s[2 * S.dstWorkload]! >= 0) str(w, b, s, K.destinationWorkload, S.dstWorkload);
  if (s[2 * S.dstNamespace]! >= 0) str(w, b, s, K.destinationNamespace, S.dstNamespace);
  if (s[2 * S.dstIdentity]! >= 0) str(w, b, s, K.destinationPrincipal, S.dstIdentity);
  if (s[2 * S.dstHost]! >= 0) str(w, b, s, K.serverAddress, S.dstHost);
  if (v.objects & O.http) {
    str(w, b, s, K.method, S.httpMethod);
    str(w, b, s, K.path, S.httpPath);
    int(w, K.status, n[N.httpStatus]!);
    if (n[N.grpcStatus]! >= 0) int(w, K.grpcStatus, n[N.grpcStatus]!);
  }
  if (v.objects & O.dns) {
    str(w, b, s, K.dnsType, S.dnsType);
    str(w, b, s, K.dnsRcode, S.dnsRcode);
    writeAnswers(w, b, v);
  }
  if (s[2 * S.policy]! >= 0) str(w, b, s, K.policy, S.policy);
  if (n[N.rule]! >= 0) int(w, K.rule, n[N.rule]!);
  if (v.objects & O.audit) {
    str(w, b, s, K.auditPolicy, S.auditPolicy);
    int(w, K.auditRule, n[N.auditRule]!);
  }
  if (n[N.count]! >= 0) int(w, K.count, n[N.count]!);
  if (v.objects & O.traffic) {
    str(w, b, s, K.route, S.route);
    int(w, K.routeRule, n[N.routeRule]!);
    str(w, b, s, K.routeBackend, S.backend);
    int(w, K.routeAttempts, n[N.attempts]!);
  }
  if (s[2 * S.traceId]! >= 0) {
    w.tag(8, WIRE_FIXED32);
    w.fixed32(1);
    const at = s[2 * S.traceId]!;
    for (let i = 0; i < 16; i++) traceId[i] = hex(b[at + 2 * i]!) * 16 + hex(b[at + 2 * i + 1]!);
    w.bytes(9, traceId);
  }
  w.raw(observed);
  w.raw(EVENT_NAME_FIELD);
  w.end(lr);
}

/** The body: `verdict direction protocol source -> destination`, as flowBody (otlp-logs.ts) writes it. */
function writeBody(w: ProtoWriter, b: Buffer, v: FlowView): void {
  const s = v.s;
  const body = w.begin(5);
  const text = w.begin(1);
  range(w, b, s, S.verdict);
  w.text(' ');
  range(w, b, s, S.direction);
  w.text(' ');
  range(w, b, s, S.protocol);
  w.text(' ');
  writeEnd(w, b, s, S.srcIp);
  w.text(' -> ');
  writeEnd(w, b, s, S.dstIp);
  w.end(text);
  w.end(body);
}

/** An endpoint (slots ip, workload, namespace, identity, host from `ip` on) as the body names it. */
function writeEnd(w: ProtoWriter, b: Buffer, s: Int32Array, ip: number): void {
  if (s[2 * (ip + 1)]! >= 0) {
    if (s[2 * (ip + 2)]! >= 0) range(w, b, s, ip + 2);
    w.text('/');
    range(w, b, s, ip + 1);
  } else range(w, b, s, s[2 * (ip + 4)]! >= 0 ? ip + 4 : ip);
}

/** palisade.dns.answers: the answers joined by commas. */
function writeAnswers(w: ProtoWriter, b: Buffer, v: FlowView): void {
  const a = v.answers;
  let len = Math.max(0, v.answerCount - 1);
  for (let i = 0; i < v.answerCount; i++) len += a[2 * i + 1]! - a[2 * i]!;
  const kv = w.begin(6);
  w.raw(K.dnsAnswers);
  const any = w.begin(2);
  w.tag(1, WIRE_LEN);
  w.varint(len);
  for (let i = 0; i < v.answerCount; i++) {
    if (i > 0) w.text(',');
    w.rawRange(b, a[2 * i]!, a[2 * i + 1]!);
  }
  w.end(any);
  w.end(kv);
}

function range(w: ProtoWriter, b: Buffer, s: Int32Array, slot: number): void {
  w.rawRange(b, s[2 * slot]!, s[2 * slot + 1]!);
}

/** A string attribute from the frame's bytes. */
function str(w: ProtoWriter, b: Buffer, s: Int32Array, key: Uint8Array, slot: number): void {
  w.stringKeyValue(6, key, b, s[2 * slot]!, s[2 * slot + 1]!);
}

/** A whole non-negative number attribute (AnyValue.int_value). */
function int(w: ProtoWriter, key: Uint8Array, x: number): void {
  w.numberKeyValue(6, key, 3, x);
}

/** A boolean attribute (0 or 1: AnyValue.bool_value). */
function bool(w: ProtoWriter, key: Uint8Array, x: number): void {
  w.numberKeyValue(6, key, 2, x);
}

/** A lowercase hex digit's value (checked by the reader). */
function hex(c: number): number {
  return c <= 0x39 ? c - 0x30 : c - 0x57;
}
