/**
 * The OTLP flow sink: every stored flow, as an OTLP log record (otlp-logs.ts), POSTed in batches
 * to an OTLP/HTTP receiver (`application/x-protobuf`). A bounded buffer between ingest and the
 * receiver: one request in flight; a receiver that is down, times out or answers 429/502/503/504
 * gets the same batch again after a backoff (its Retry-After honoured), while new flows wait; a
 * full buffer drops the oldest waiting flows and counts them lost. accepted = delivered + lost +
 * buffered at every moment. docs/architecture.md "Flow sinks".
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

export interface OtlpSinkOptions {
  name: string;
  url: URL;
  log: Logger;
  /** One ExportLogsServiceRequest for these flows. */
  encode(records: readonly FlowRecord[]): Uint8Array;
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
  /** Replaces the HTTP POST (tests). */
  post?: (body: Uint8Array) => Promise<PostResult>;
}

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
  private readonly post: (body: Uint8Array) => Promise<PostResult>;
  /** waiting flows: pending[head…] */
  private pending: FlowRecord[] = [];
  private head = 0;
  private inFlight: readonly FlowRecord[] | undefined;
  private body: Uint8Array | undefined;
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
    this.post = opts.post ?? ((b) => postProtobuf(opts.url, b, opts.requestTimeoutMs ?? 10_000));
  }

  write(records: readonly FlowRecord[]): void {
    if (records.length === 0) return;
    this.c.accepted += records.length;
    if (this.closed) return this.lose(records.length, 'shutdown');
    const room = this.maxBuffered - this.buffered();
    const over = records.length - room;
    if (over > 0) {
      // the oldest waiting flows make room; what no waiting flow can make room for is dropped
      const fromWaiting = Math.min(over, this.waiting());
      this.head += fromWaiting;
      const fromNew = over - fromWaiting;
      this.lose(over, 'buffer-full');
      for (let i = fromNew; i < records.length; i++) this.pending.push(records[i]!);
    } else for (let i = 0; i < records.length; i++) this.pending.push(records[i]!);
    this.compact();
    if (this.inFlight !== undefined) return;
    if (this.waiting() >= this.batchSize) this.schedule(0);
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
    this.pending = [];
    this.head = 0;
    this.inFlight = undefined;
    if (left > 0) this.lose(left, 'shutdown');
    this.log.info({ ...this.counts() }, 'flow sink closed');
  }

  private buffered(): number {
    return this.waiting() + (this.inFlight?.length ?? 0);
  }

  private waiting(): number {
    return this.pending.length - this.head;
  }

  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
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
    if (this.waiting() === 0) return this.drained?.();
    const n = Math.min(this.batchSize, this.waiting());
    const batch = this.pending.slice(this.head, this.head + n);
    this.head += n;
    this.compact();
    this.inFlight = batch;
    try {
      this.body = this.opts.encode(batch);
    } catch (err) {
      this.log.error({ err }, 'flow batch could not be encoded; counted lost');
      this.inFlight = undefined;
      this.lose(batch.length, 'refused');
      return this.next();
    }
    this.attempt();
  }

  private attempt(): void {
    const batch = this.inFlight!;
    this.post(this.body!).then(
      (r) => this.answered(batch, r),
      (err: unknown) => this.answered(batch, { status: 0, error: String((err as Error)?.message ?? err) }),
    );
  }

  private answered(batch: readonly FlowRecord[], r: PostResult): void {
    if (this.closed || this.inFlight !== batch) return;
    if (r.status >= 200 && r.status < 300) {
      this.inFlight = undefined;
      this.body = undefined;
      if (this.failures > 0) this.log.info({ status: r.status, failures: this.failures }, 'flow sink receiver is back');
      this.failures = 0;
      this.c.delivered += batch.length;
      this.opts.metrics?.delivered(this.name, batch.length);
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
    this.log.error({ status: r.status, flows: batch.length }, 'flow sink receiver refused a batch; counted lost');
    this.inFlight = undefined;
    this.body = undefined;
    this.failures = 0;
    this.lose(batch.length, 'refused');
    this.next();
  }

  /** After a batch settled: the next one at once if a full one waits, else at the flush interval. */
  private next(): void {
    if (this.waiting() === 0) return this.drained?.();
    this.schedule(this.waiting() >= this.batchSize || this.closing ? 0 : this.flushIntervalMs);
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

/** One POST of an OTLP protobuf body; never rejects. */
export function postProtobuf(url: URL, body: Uint8Array, timeoutMs: number): Promise<PostResult> {
  return new Promise((resolve) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf', 'content-length': body.byteLength },
      timeout: timeoutMs,
      agent: false,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...retryAfter(res.headers['retry-after']) }));
      res.on('error', (err) => resolve({ status: 0, error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 0, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end(body);
  });
}

/** Retry-After as seconds (HTTP dates are not worth the parse here). */
function retryAfter(v: string | undefined): { retryAfterMs?: number } {
  if (v === undefined || !/^\d{1,6}$/.test(v)) return {};
  return { retryAfterMs: Number(v) * 1000 };
}
