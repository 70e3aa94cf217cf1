/**
 * The proxy's tracer: per HTTP hop a server span (the request as the proxy received it) and, when
 * it forwarded the request, a client span (the request to the upstream), with the mesh's
 * attributes, exported by OTLP/HTTP protobuf through the OpenTelemetry JS SDK's OTLPTraceExporter
 * from a bounded queue that counts every span (span-queue.ts). Whether a hop is exported is
 * decided first (`wants`), and only then are its spans built: hops this tracer sampled, and —
 * within a rate per source and per node (forced-limit.ts) — hops the client marked sampled and
 * denied and 5xx ones. docs/architecture.md "Tracing".
 */
import { randomBytes } from 'node:crypto';
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime, type SpanContext } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { ForcedLimit, type ForcedLimitOptions } from './forced-limit';
import { SpanQueue, type SpanCounts } from './span-queue';
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
  /** how often the queue exports; default 1 s */
  exportIntervalMs?: number;
  /** spans waiting for export at most; default 8192 */
  maxQueue?: number;
  /** how many hops clients, denials and 5xx may have exported beyond the sampling (tests) */
  forced?: ForcedLimitOptions;
}

/** What the tracer counted: spans by outcome, and hops not exported because over the forced rate. */
export interface TraceCounts {
  spans: SpanCounts;
  rateLimitedHops: number;
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
  /** who sent the request (identity, else address): whose forced rate a forced hop uses */
  source?: string;
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
  private readonly queue: SpanQueue;
  private readonly forced: ForcedLimit;
  private readonly resource: Resource;
  private readonly ids = new Ids();
  private readonly rate: number;
  private rateLimited = 0;

  constructor(opts: MeshTracerOptions) {
    this.rate = opts.sampleRate;
    // The SDK's resources and OTLP exporter are loaded only by an agent that traces: they are
    // ~0.2–0.7 s of module loading that every agent start paid, tracing or not.
    const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
    this.resource = resourceFromAttributes({ 'service.name': 'palisade-proxy', 'palisade.node': opts.node });
    const exporter =
      opts.exporter ?? new (require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter({ url: opts.url });
    this.queue = new SpanQueue(exporter, { intervalMs: opts.exportIntervalMs ?? 1000, maxQueue: opts.maxQueue ?? 8192, maxBatch: 512 });
    this.forced = new ForcedLimit(opts.forced);
  }

  begin(headers: Readonly<Record<string, readonly string[]>>): TraceHop {
    return beginHop(headers, this.rate, Math.random, this.ids);
  }

  /**
   * Whether the hop's spans are to be exported: sampled here, or forced (the client's sampled
   * flag, denied, 5xx) within the forced rate of `source` and of the node — a forced hop over it
   * is counted and not exported. Call once per hop, before building its attributes.
   */
  wants(hop: TraceHop, status: number, denied: boolean, source = ''): boolean {
    if (hop.sampled && hop.clientSampled !== true) return true;
    if (!hop.sampled && !denied && status < 500) return false;
    if (this.forced.take(source)) return true;
    this.rateLimited++;
    return false;
  }

  /** Queue the spans of a hop `wants` said yes to; false when the queue had no room (counted queue-full). */
  export(hop: TraceHop, o: HopOutcome): boolean {
    const n = o.upstreamStartMs !== undefined ? 2 : 1;
    if (!this.queue.hasRoom(n)) {
      this.queue.refuse(n);
      return false;
    }
    this.queue.add(this.span(hop, hop.serverSpanId, hop.parentSpanId, SpanKind.SERVER, o.name, o.startMs, o.endMs, o));
    if (o.upstreamStartMs !== undefined) {
      this.queue.add(this.span(hop, hop.clientSpanId, hop.serverSpanId, SpanKind.CLIENT, o.name, o.upstreamStartMs, o.endMs, o));
    }
    return true;
  }

  /** `wants`, then `export`: returns whether the hop's spans were queued for export. */
  finish(hop: TraceHop, o: HopOutcome): boolean {
    return this.wants(hop, o.status, o.denied, o.source) && this.export(hop, o);
  }

  counts(): TraceCounts {
    return { spans: { ...this.queue.counts }, rateLimitedHops: this.rateLimited };
  }

  /** Export what is queued now. */
  async flush(): Promise<void> {
    await this.queue.flush();
  }

  async close(): Promise<void> {
    await this.queue.close();
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
