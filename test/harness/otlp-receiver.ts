/**
 * A double of an OpenTelemetry Collector's OTLP/HTTP receiver: a real HTTP server on loopback
 * that takes `POST /v1/logs` and `POST /v1/traces` in protobuf and decodes them with the official
 * OTLP proto definitions (test/fixtures/otlp-proto, through protobufjs), so what Palisade sends is
 * read by code that did not write it. It keeps every log record and span, can be taken down and
 * brought back on the same port, and can answer a status of the test's choosing.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as protobuf from 'protobufjs';
import { fixturePath } from './fixtures';

export type AttrValue = string | number | boolean | AttrValue[] | undefined;

export interface ReceivedLog {
  resource: Record<string, AttrValue>;
  scope: { name: string; version: string };
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: AttrValue;
  eventName: string;
  attributes: Record<string, AttrValue>;
  traceId: string;
  spanId: string;
}

export interface ReceivedSpan {
  resource: Record<string, AttrValue>;
  scope: { name: string; version: string };
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** 1 internal, 2 server, 3 client */
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Record<string, AttrValue>;
  status: { code: number; message: string };
}

let root: protobuf.Root | undefined;

/** The official definitions, loaded once. */
function protoRoot(): protobuf.Root {
  if (root) return root;
  const base = fixturePath('otlp-proto');
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => (target.startsWith('/') ? target : `${base}/${target}`);
  r.loadSync(['opentelemetry/proto/collector/logs/v1/logs_service.proto', 'opentelemetry/proto/collector/trace/v1/trace_service.proto'], { keepCase: false });
  root = r;
  return r;
}

const hex = (b: Uint8Array | undefined): string => (b ? Buffer.from(b).toString('hex') : '');

function anyValue(v: Record<string, unknown> | undefined): AttrValue {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue as string;
  if (v.boolValue !== undefined) return v.boolValue as boolean;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue as number;
  if (v.arrayValue !== undefined) return ((v.arrayValue as { values?: Array<Record<string, unknown>> }).values ?? []).map(anyValue);
  return undefined;
}

function attributes(kvs: Array<{ key: string; value?: Record<string, unknown> }> | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

type Obj = Record<string, any>;
const OBJECT_OPTS: protobuf.IConversionOptions = { longs: String, defaults: true, arrays: true };

/** An ExportLogsServiceRequest, flattened to its log records. */
export function decodeLogs(body: Uint8Array): ReceivedLog[] {
  const type = protoRoot().lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
  const req = type.toObject(type.decode(body), OBJECT_OPTS) as Obj;
  const out: ReceivedLog[] = [];
  for (const rl of req.resourceLogs as Obj[]) {
    const resource = attributes(rl.resource?.attributes);
    for (const sl of rl.scopeLogs as Obj[]) {
      const scope = { name: sl.scope?.name ?? '', version: sl.scope?.version ?? '' };
      for (const lr of sl.logRecords as Obj[]) {
        out.push({
          resource,
          scope,
          timeUnixNano: lr.timeUnixNano,
          observedTimeUnixNano: lr.observedTimeUnixNano,
          severityNumber: lr.severityNumber,
          severityText: lr.severityText,
          body: anyValue(lr.body),
          eventName: lr.eventName,
          attributes: attributes(lr.attributes),
          traceId: hex(lr.traceId),
          spanId: hex(lr.spanId),
        });
      }
    }
  }
  return out;
}

/** An ExportTraceServiceRequest, flattened to its spans. */
export function decodeSpans(body: Uint8Array): ReceivedSpan[] {
  const type = protoRoot().lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
  const req = type.toObject(type.decode(body), OBJECT_OPTS) as Obj;
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans as Obj[]) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans as Obj[]) {
      const scope = { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '' };
      for (const s of ss.spans as Obj[]) {
        out.push({
          resource,
          scope,
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState,
          name: s.name,
          kind: s.kind,
          startTimeUnixNano: s.startTimeUnixNano,
          endTimeUnixNano: s.endTimeUnixNano,
          attributes: attributes(s.attributes),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
        });
      }
    }
  }
  return out;
}

export class OtlpReceiver {
  readonly logs: ReceivedLog[] = [];
  readonly spans: ReceivedSpan[] = [];
  /** requests answered, by path and status */
  readonly requests: Array<{ path: string; status: number; items: number }> = [];
  /** answer every request with this status instead of decoding it (e.g. 503) */
  failWith: number | undefined;
  /** take every request and never answer it (a receiver that hangs) until down() drops them */
  hold = false;
  /** requests held so far */
  held = 0;
  private server: http.Server | undefined;
  private port = 0;

  private constructor(readonly host: string) {}

  static async start(host = '127.0.0.1', port = 0): Promise<OtlpReceiver> {
    const r = new OtlpReceiver(host);
    protoRoot();
    r.port = port;
    await r.up();
    return r;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** Listen (again, on the same port after down()). */
  async up(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stop listening and drop every open connection: the receiver is down. */
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      const answer = (status: number, items = 0): void => {
        this.requests.push({ path, status, items });
        res.writeHead(status, { 'content-type': 'application/x-protobuf' }).end();
      };
      if (this.hold) {
        this.held++;
        return;
      }
      if (this.failWith !== undefined) return answer(this.failWith);
      if (req.method !== 'POST' || req.headers['content-type'] !== 'application/x-protobuf') return answer(415);
      const body = Buffer.concat(chunks);
      try {
        if (path === '/v1/logs') {
          const logs = decodeLogs(body);
          this.logs.push(...logs);
          return answer(200, logs.length);
        }
        if (path === '/v1/traces') {
          const spans = decodeSpans(body);
          this.spans.push(...spans);
          return answer(200, spans.length);
        }
        return answer(404);
      } catch {
        return answer(400);
      }
    });
  }
}
