/**
 * The OTLP flow sink: every stored flow, as an OTLP log record (otlp-logs.ts), POSTed in batches
 * to an OTLP/HTTP receiver (`application/x-protobuf`). Flows are encoded as they arrive and only
 * their bytes wait (no object per flow is kept alive: ingest's records die young). A bounded
 * buffer between ingest and the receiver: one request in flight; a receiver that is down, times
 * out or answers 429/502/503/504 gets the same batch again after a backoff (its Retry-After
 * honoured), while new flows wait; a full buffer drops the oldest waiting flows and counts them
 * lost. accepted = delivered + lost + buffered at every moment. docs/architecture.md "Flow sinks".
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { FlowRecord } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { FlowSink, SinkCounts } from './sink';

export type LossReason = 'buffer-full' | 'refused' | 'shutdown';

/** What the sink counts; the collector's metrics implement it. */
export interface SinkMetrics {
  delivered(sink: string, count: number): void;
  lost(sink: string, count: number, reason: LossReason): void;
}

/** A receiver's answer: its HTTP status (0: no answer) and Retry-After in ms when it sent one. */
export interface PostResult {
  status: number;
  retryAfterMs?: number;
  error?: string;
}

/** Flows encoded one after another, and where each one ends in `bytes`. */
export interface EncodedFlows {
  bytes: Uint8Array;
  ends: ArrayLike<number>;
}

/** How the sink turns flows into bytes as they arrive, and waiting bytes into a request. */
export interface FlowEncoder {
  /** The flows' records, encoded one after another. */
  records(records: readonly FlowRecord[]): EncodedFlows;
  /** One request body carrying these parts (slices of `records` results) in order, as pieces sent one after another. */
  request(parts: readonly Uint8Array[]): Uint8Array[];
}

export interface OtlpSinkOptions {
  name: string;
  url: URL;
  log: Logger;
  encoder: FlowEncoder;
  metrics?: SinkMetrics;
  /** Flows held at most, in flight included; default 100 000. */
  maxBuffered?: number;
  /** Flows per request at most; default 1000. */
  batchSize?: number;
  /** A batch goes at least this often while flows wait (at once when a full one waits); default 1 s. */
  flushIntervalMs?: number;
  /** Retry backoff: starts here, doubles up to retryMaxMs; defaults 500 ms and 30 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** One request's deadline; default 10 s. */
  requestTimeoutMs?: number;
  /** How long close() keeps delivering; default 5 s. */
  closeGraceMs?: number;
  /** Replaces the HTTP POST (tests): the body in pieces. */
  post?: (body: readonly Uint8Array[]) => Promise<PostResult>;
}

/** Encoded flows waiting: records first…count-1 of `bytes`. */
interface Segment {
  bytes: Uint8Array;
  ends: ArrayLike<number>;
  first: number;
  count: number;
}

const EMPTY: Segment = { bytes: new Uint8Array(0), ends: [], first: 0, count: 0 };

/** Statuses after which the same request may succeed later (the OTLP/HTTP specification's list). */
const RETRYABLE = new Set([0, 408, 429, 502, 503, 504]);
const MAX_RETRY_AFTER_MS = 5 * 60_000;

export class OtlpSink implements FlowSink {
  readonly name: string;
  private readonly log: Logger;
  private readonly maxBuffered: number;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly post: (body: readonly Uint8Array[]) => Promise<PostResult>;
  private readonly agent: http.Agent | undefined;
  /** waiting flows, encoded: segments[head…], each from its `first` record on */
  private segments: Segment[] = [];
  private head = 0;
  private waitingCount = 0;
  /** the batch in flight: its flow count (a fresh object per batch) */
  private inFlight: { count: number } | undefined;
  private body: Uint8Array[] | undefined;
  private readonly c = { accepted: 0, delivered: 0, lost: 0 };
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private closed = false;
  private lastLossLog = 0;
  private drained: (() => void) | undefined;

  constructor(private readonly opts: OtlpSinkOptions) {
    this.name = opts.name;
    this.log = opts.log.child({ component: 'flow-sink', sink: opts.name });
    this.maxBuffered = opts.maxBuffered ?? 100_000;
    this.batchSize = Math.min(opts.batchSize ?? 1000, this.maxBuffered);
    this.flushIntervalMs = opts.flushIntervalMs ?? 1000;
    this.retryMinMs = opts.retryMinMs ?? 500;
    this.retryMaxMs = opts.retryMaxMs ?? 30_000;
    // one connection kept open to the receiver (one request in flight at most)
    const agent = opts.post ? undefined : new (opts.url.protocol === 'https:' ? https : http).Agent({ keepAlive: true, maxSockets: 1 });
    this.agent = agent;
    this.post = opts.post ?? ((b) => postProtobuf(opts.url, b, opts.requestTimeoutMs ?? 10_000, agent));
  }

  write(records: readonly FlowRecord[]): void {
    const n = records.length;
    if (n === 0) return;
    this.c.accepted += n;
    if (this.closed) return this.lose(n, 'shutdown');
    let seg: Segment;
    try {
      const e = this.opts.encoder.records(records);
      seg = { bytes: e.bytes, ends: e.ends, first: 0, count: n };
    } catch (err) {
      this.log.error({ err, flows: n }, 'flows could not be encoded; counted lost');
      return this.lose(n, 'refused');
    }
    const over = n - (this.maxBuffered - this.buffered());
    if (over > 0) {
      // the oldest waiting flows make room; what no waiting flow can make room for is dropped
      const fromWaiting = Math.min(over, this.waitingCount);
      this.dropWaiting(fromWaiting);
      seg.first = over - fromWaiting;
      this.lose(over, 'buffer-full');
    }
    if (seg.first < seg.count) {
      this.segments.push(seg);
      this.waitingCount += seg.count - seg.first;
    }
    if (this.inFlight !== undefined) return;
    if (this.waitingCount >= this.batchSize) this.schedule(0);
    else if (this.timer === undefined) this.schedule(this.flushIntervalMs);
  }

  counts(): SinkCounts {
    return { ...this.c, buffered: this.buffered() };
  }

  /** Whether the last request failed and the sink is waiting to try again. */
  get retrying(): boolean {
    return this.failures > 0;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.buffered() > 0) {
      const grace = this.opts.closeGraceMs ?? 5000;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, grace);
        this.drained = () => {
          clearTimeout(t);
          resolve();
        };
        if (this.inFlight === undefined) this.schedule(0);
      });
    }
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const left = this.buffered();
    this.segments = [];
    this.head = 0;
    this.waitingCount = 0;
    this.inFlight = undefined;
    if (left > 0) this.lose(left, 'shutdown');
    this.agent?.destroy();
    this.log.info({ ...this.counts() }, 'flow sink closed');
  }

  private buffered(): number {
    return this.waitingCount + (this.inFlight?.count ?? 0);
  }

  /** Drop the `n` oldest waiting flows. */
  private dropWaiting(n: number): void {
    this.take(n, undefined);
  }

  /** The `n` oldest waiting flows leave the buffer; their bytes go to `parts` when given. */
  private take(n: number, parts: Uint8Array[] | undefined): void {
    this.waitingCount -= n;
    while (n > 0) {
      const seg = this.segments[this.head]!;
      const k = Math.min(n, seg.count - seg.first);
      if (parts !== undefined) parts.push(seg.bytes.subarray(seg.first === 0 ? 0 : seg.ends[seg.first - 1]!, seg.ends[seg.first + k - 1]!));
      seg.first += k;
      n -= k;
      if (seg.first === seg.count) this.segments[this.head++] = EMPTY;
    }
    if (this.head > 1024 && this.head * 2 > this.segments.length) {
      this.segments = this.segments.slice(this.head);
      this.head = 0;
    }
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send();
    }, ms);
    this.timer.unref();
  }

  private send(): void {
    if (this.closed || this.inFlight !== undefined) return;
    if (this.waitingCount === 0) return this.drained?.();
    const n = Math.min(this.batchSize, this.waitingCount);
    const parts: Uint8Array[] = [];
    this.take(n, parts);
    this.inFlight = { count: n };
    this.body = this.opts.encoder.request(parts);
    this.attempt();
  }

  private attempt(): void {
    const batch = this.inFlight!;
    this.post(this.body!).then(
      (r) => this.answered(batch, r),
      (err: unknown) => this.answered(batch, { status: 0, error: String((err as Error)?.message ?? err) }),
    );
  }

  private answered(batch: { count: number }, r: PostResult): void {
    if (this.closed || this.inFlight !== batch) return;
    if (r.status >= 200 && r.status < 300) {
      this.inFlight = undefined;
      this.body = undefined;
      if (this.failures > 0) this.log.info({ status: r.status, failures: this.failures }, 'flow sink receiver is back');
      this.failures = 0;
      this.c.delivered += batch.count;
      this.opts.metrics?.delivered(this.name, batch.count);
      return this.next();
    }
    if (RETRYABLE.has(r.status)) {
      this.failures++;
      const backoff = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(this.failures - 1, 20));
      const wait = r.retryAfterMs !== undefined ? Math.min(Math.max(r.retryAfterMs, this.retryMinMs), MAX_RETRY_AFTER_MS) : backoff;
      if (this.failures === 1 || this.failures % 10 === 0) {
        this.log.warn({ status: r.status, error: r.error, failures: this.failures, retryInMs: wait, buffered: this.buffered() }, 'flow sink receiver unavailable; retrying');
      }
      if (this.closing) return this.drained?.();
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (!this.closed) this.attempt();
      }, wait);
      this.timer.unref();
      return;
    }
    this.log.error({ status: r.status, flows: batch.count }, 'flow sink receiver refused a batch; counted lost');
    this.inFlight = undefined;
    this.body = undefined;
    this.failures = 0;
    this.lose(batch.count, 'refused');
    this.next();
  }

  /** After a batch settled: the next one at once if a full one waits, else at the flush interval. */
  private next(): void {
    if (this.waitingCount === 0) return this.drained?.();
    this.schedule(this.waitingCount >= this.batchSize || this.closing ? 0 : this.flushIntervalMs);
  }

  private lose(n: number, reason: LossReason): void {
    this.c.lost += n;
    this.opts.metrics?.lost(this.name, n, reason);
    const now = Date.now();
    if (now - this.lastLossLog >= 10_000) {
      this.lastLossLog = now;
      this.log.warn({ lost: n, reason, lostTotal: this.c.lost }, 'flow sink lost flows');
    }
  }
}

/** One POST of an OTLP protobuf body, given in pieces; never rejects. Without an agent: a connection of its own. */
export function postProtobuf(url: URL, body: readonly Uint8Array[], timeoutMs: number, agent?: http.Agent): Promise<PostResult> {
  return new Promise((resolve) => {
    const mod = url.protocol === 'https:' ? https : http;
    let length = 0;
    for (const b of body) length += b.byteLength;
    const req = mod.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf', 'content-length': length },
      timeout: timeoutMs,
      agent: agent ?? false,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...retryAfter(res.headers['retry-after']) }));
      res.on('error', (err) => resolve({ status: 0, error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 0, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.cork();
    for (const b of body) req.write(b);
    req.end();
  });
}

/** Retry-After as seconds (HTTP dates are not worth the parse here). */
function retryAfter(v: string | undefined): { retryAfterMs?: number } {
  if (v === undefined || !/^\d{1,6}$/.test(v)) return {};
  return { retryAfterMs: Number(v) * 1000 };
}
