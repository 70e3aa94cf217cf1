/**
 * Trace context on one HTTP hop, as pure functions: what the client sent (W3C traceparent and
 * tracestate, B3 single `b3` or multi `x-b3-*` headers, read by OpenTelemetry's propagators),
 * whether this hop is sampled, and the headers the request carries on to the upstream (W3C always,
 * and B3 in the client's own form when it spoke B3). docs/architecture.md "Tracing".
 */
import { ROOT_CONTEXT, trace, TraceFlags, type SpanContext, type TextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';

/** The request headers that carry trace context: removed from what is forwarded, the hop's own written instead. */
export const TRACE_HEADERS: ReadonlySet<string> = new Set(['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);

export type B3Form = 'single' | 'multi';

/** One hop's place in a trace: the client's span (if it sent one), the proxy's server and client spans. */
export interface TraceHop {
  traceId: string;
  /** the client's span, the server span's parent; absent when this hop started the trace */
  parentSpanId?: string;
  serverSpanId: string;
  /** the span of the request to the upstream: the upstream's parent */
  clientSpanId: string;
  /** the spans are exported whatever the outcome (denied and 5xx are exported anyway) */
  sampled: boolean;
  /** `sampled` is the client's flag, not this hop's draw (exported within the forced rate only) */
  clientSampled?: boolean;
  traceState?: string;
  /** the client spoke B3, in this form */
  b3?: B3Form;
}

const w3c = new W3CTraceContextPropagator();
const b3 = new B3Propagator();
const b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
const b3Multi = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });

type Headers = Readonly<Record<string, readonly string[]>>;

const getter: TextMapGetter<Headers> = {
  keys: (c) => Object.keys(c),
  get: (c, k) => {
    const v = c[k];
    return v === undefined || v.length === 0 ? undefined : v.length === 1 ? v[0] : [...v];
  },
};

/** The context the client sent, W3C first (as Istio's proxies prefer it), then B3. */
export function incomingContext(headers: Headers): { context: SpanContext; b3?: B3Form } | undefined {
  if (headers.traceparent !== undefined) {
    const sc = trace.getSpanContext(w3c.extract(ROOT_CONTEXT, headers, getter));
    if (sc && trace.isSpanContextValid(sc)) return { context: sc, ...(headers.b3 ? { b3: 'single' as const } : headers['x-b3-traceid'] ? { b3: 'multi' as const } : {}) };
  }
  if (headers.b3 !== undefined || headers['x-b3-traceid'] !== undefined) {
    const sc = trace.getSpanContext(b3.extract(ROOT_CONTEXT, headers, getter));
    if (sc && trace.isSpanContextValid(sc)) return { context: sc, b3: headers.b3 !== undefined ? 'single' : 'multi' };
  }
  return undefined;
}

/**
 * This hop's trace: the client's context continued (its sampled flag decides), or a new trace
 * sampled when `draw() < rate`. `ids` makes span (8 bytes) and trace (16 bytes) ids in hex.
 */
export function beginHop(headers: Headers, rate: number, draw: () => number, ids: { span(): string; trace(): string }): TraceHop {
  const inc = incomingContext(headers);
  if (inc === undefined) return { traceId: ids.trace(), serverSpanId: ids.span(), clientSpanId: ids.span(), sampled: draw() < rate };
  const sc = inc.context;
  const state = sc.traceState?.serialize();
  const sampled = (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
  return {
    traceId: sc.traceId,
    parentSpanId: sc.spanId,
    serverSpanId: ids.span(),
    clientSpanId: ids.span(),
    sampled,
    ...(sampled && { clientSampled: true }),
    ...(state ? { traceState: state } : {}),
    ...(inc.b3 ? { b3: inc.b3 } : {}),
  };
}

/** The trace headers the upstream request carries: name, value pairs (lowercase names). */
export function upstreamHeaders(hop: TraceHop): Array<[string, string]> {
  const carrier: Record<string, string> = {};
  const setter = { set: (c: Record<string, string>, k: string, v: string) => (c[k] = v) };
  const sc: SpanContext = {
    traceId: hop.traceId,
    spanId: hop.clientSpanId,
    traceFlags: hop.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: false,
  };
  // traceparent as the W3C propagator writes it (version 00), without its context objects
  carrier.traceparent = `00-${hop.traceId}-${hop.clientSpanId}-${hop.sampled ? '01' : '00'}`;
  if (hop.traceState) carrier.tracestate = hop.traceState;
  if (hop.b3 !== undefined) {
    const ctx = trace.setSpanContext(ROOT_CONTEXT, sc);
    (hop.b3 === 'single' ? b3Single : b3Multi).inject(ctx, carrier, setter);
  }
  return Object.entries(carrier);
}

/** HTTP/2 request headers to forward (an object) without the client's trace headers, with the hop's own. */
export function withTraceFields<H extends Record<string, unknown>>(headers: H, hop: TraceHop): H {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(headers)) if (!TRACE_HEADERS.has(name)) out[name] = headers[name];
  for (const [name, value] of upstreamHeaders(hop)) out[name] = value;
  return out as H;
}

/** Forwarded header lines (name, value, …) without the client's trace headers, with the hop's own. */
export function withTraceHeaders(lines: readonly string[], hop: TraceHop): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; i += 2) {
    if (!TRACE_HEADERS.has(lines[i]!.toLowerCase())) out.push(lines[i]!, lines[i + 1]!);
  }
  for (const [name, value] of upstreamHeaders(hop)) out.push(name, value);
  return out;
}
