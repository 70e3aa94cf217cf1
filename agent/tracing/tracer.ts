/**
 * The proxy's tracer: per HTTP hop a server span (the request as the proxy received it) and, when
 * it forwarded the request, a client span (the request to the upstream), with the mesh's
 * attributes, exported by OTLP/HTTP protobuf through the OpenTelemetry JS SDK (BatchSpanProcessor,
 * OTLPTraceExporter). Sampled hops are exported, and denied and 5xx ones whatever the sampling.
 * docs/architecture.md "Tracing".
 */
import { randomBytes } from 'node:crypto';
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime, type SpanContext } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { beginHop, type TraceHop } from './trace-context';

export const DEFAULT_SAMPLE_RATE = 0.01;
export const TRACER_SCOPE = { name: 'palisade.proxy', version: '1' } as const;

export interface MeshTracerOptions {
  /** OTLP/HTTP traces endpoint, e.g. http://otel:4318/v1/traces */
  url: string;
  /** share of new traces sampled, 0..1 */
  sampleRate: number;
  node: string;
  /** replaces the OTLP exporter (tests) */
  exporter?: SpanExporter;
  /** how often the processor exports; default 1 s */
  exportIntervalMs?: number;
}

/** What a finished hop's spans say. */
export interface HopOutcome {
  /** span name: `METHOD` plus the route when known */
  name: string;
  /** wall-clock ms the request arrived and the hop ended */
  startMs: number;
  endMs: number;
  /** wall-clock ms the request went to the upstream (no client span without it) */
  upstreamStartMs?: number;
  status: number;
  denied: boolean;
  attributes: Attributes;
}

/** Span ids: 8 random bytes from a pool, never all zero. */
class Ids {
  private pool = Buffer.alloc(0);
  private at = 0;
  private take(n: number): string {
    for (;;) {
      if (this.at + n > this.pool.length) {
        this.pool = randomBytes(4096);
        this.at = 0;
      }
      const s = this.pool.toString('hex', this.at, this.at + n);
      this.at += n;
      if (!/^0+$/.test(s)) return s;
    }
  }
  span = (): string => this.take(8);
  trace = (): string => this.take(16);
}

const hr = (ms: number): HrTime => {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
};

export class MeshTracer {
  private readonly processor: BatchSpanProcessor;
  private readonly resource: Resource;
  private readonly ids = new Ids();
  private readonly rate: number;

  constructor(opts: MeshTracerOptions) {
    this.rate = opts.sampleRate;
    this.resource = resourceFromAttributes({ 'service.name': 'palisade-proxy', 'palisade.node': opts.node });
    const exporter = opts.exporter ?? new OTLPTraceExporter({ url: opts.url });
    this.processor = new BatchSpanProcessor({ exporter, scheduledDelayMillis: opts.exportIntervalMs ?? 1000, maxQueueSize: 8192, maxExportBatchSize: 512 });
  }

  begin(headers: Readonly<Record<string, readonly string[]>>): TraceHop {
    return beginHop(headers, this.rate, Math.random, this.ids);
  }

  /** Export the hop's spans when it was sampled, denied or answered 5xx; returns whether it did. */
  finish(hop: TraceHop, o: HopOutcome): boolean {
    if (!hop.sampled && !o.denied && o.status < 500) return false;
    const server = this.span(hop, hop.serverSpanId, hop.parentSpanId, SpanKind.SERVER, o.name, o.startMs, o.endMs, o);
    this.processor.onEnd(server);
    if (o.upstreamStartMs !== undefined) {
      this.processor.onEnd(this.span(hop, hop.clientSpanId, hop.serverSpanId, SpanKind.CLIENT, o.name, o.upstreamStartMs, o.endMs, o));
    }
    return true;
  }

  /** Export what is queued now. */
  async flush(): Promise<void> {
    await this.processor.forceFlush();
  }

  async close(): Promise<void> {
    await this.processor.shutdown();
  }

  private span(hop: TraceHop, spanId: string, parent: string | undefined, kind: SpanKind, name: string, startMs: number, endMs: number, o: HopOutcome): ReadableSpan {
    // exported spans are marked sampled: a denied or 5xx hop is kept whatever the sampling
    const ctx: SpanContext = { traceId: hop.traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: false };
    const parentCtx: SpanContext | undefined = parent === undefined ? undefined : { traceId: hop.traceId, spanId: parent, traceFlags: TraceFlags.SAMPLED, isRemote: kind === SpanKind.SERVER };
    const error = o.denied || o.status >= 500 || o.status === 0;
    return {
      name,
      kind,
      spanContext: () => ctx,
      ...(parentCtx ? { parentSpanContext: parentCtx } : {}),
      startTime: hr(startMs),
      endTime: hr(endMs),
      duration: hr(Math.max(0, endMs - startMs)),
      status: error ? { code: SpanStatusCode.ERROR, message: o.denied ? 'denied' : `status ${o.status}` } : { code: SpanStatusCode.UNSET },
      attributes: o.attributes,
      links: [],
      events: [],
      ended: true,
      resource: this.resource,
      instrumentationScope: TRACER_SCOPE,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
  }
}
