/**
 * The OTLP flow sink: every stored flow, as an OTLP log record (otlp-logs.ts), POSTed in batches
 * to an OTLP/HTTP receiver (`application/x-protobuf`). The collector's thread only keeps the
 * agents' frames the flows came in (their bytes, no object per flow) and the accounting; the
 * encoding and the POSTs happen in a worker thread (otlp-sink-worker.ts). A bounded buffer
 * between ingest and the receiver, with up to `maxInFlight` requests in flight (OTLP does not
 * need them in order): a batch is handed on as soon as it is full and a slot is free, and the
 * window of slots opens one per answered batch and closes to one when the receiver fails. A
 * receiver that is down, times out or answers 408/429/502/503/504 gets the same batch again after
 * a backoff (its Retry-After honoured), oldest failed batch first, nothing newer meanwhile; a full
 * buffer drops the oldest waiting flows (never a batch already handed on) and counts them lost.
 * accepted = delivered + lost + buffered at every moment. docs/architecture.md "Flow sinks".
 */
import type { StoredBatch } from '../flows/stored-batch';
import type { Logger } from '../../common/log';
import type { FlowSink, SinkCounts } from './sink';
import type { FlowPiece, SendBatch, SendResult } from './otlp-batch';
import { SinkWorker } from './sink-worker';

export { encodeAndPost, type FlowEncoder, type FlowPiece, type PostResult, type SendBatch, type SendResult } from './otlp-batch';

export type LossReason = 'buffer-full' | 'refused' | 'shutdown';

/** What the sink counts; the collector's metrics implement it. */
export interface SinkMetrics {
  delivered(sink: string, count: number): void;
  lost(sink: string, count: number, reason: LossReason): void;
}

export interface OtlpSinkOptions {
  name: string;
  url: URL;
  log: Logger;
  metrics?: SinkMetrics;
  /** Flows held at most, in flight included; default 100 000. */
  maxBuffered?: number;
  /** Flows per request at most; default 1000. */
  batchSize?: number;
  /** Requests in flight at most (batches handed on and not answered, or waiting to be sent again); default 4. */
  maxInFlight?: number;
  /** A batch goes at least this often while flows wait (at once when a full one waits); default 1 s. */
  flushIntervalMs?: number;
  /** Retry backoff: starts here, doubles up to retryMaxMs; defaults 500 ms and 30 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** One request's deadline; default 10 s. */
  requestTimeoutMs?: number;
  /** How long close() keeps delivering; default 5 s. */
  closeGraceMs?: number;
  /** Encodes and sends a batch; default: the worker thread (otlp-sink-worker.ts) with `resource`. */
  send?: SendBatch;
  /** The OTLP resource of every log record (for the worker). */
  resource?: Record<string, string>;
}

/** Flows waiting: records first…count-1 of an agent's frame, stored at `storedMs`. */
interface Segment {
  frame: Uint8Array;
  first: number;
  count: number;
  storedMs: number;
}

/** A batch cut from the waiting flows: in flight, or waiting to be sent again. */
interface Batch {
  /** cut order: failed batches go again oldest first */
  seq: number;
  count: number;
  pieces: FlowPiece[];
  /** retryable failures so far (its backoff) */
  failures: number;
}

const EMPTY: Segment = { frame: new Uint8Array(0), first: 0, count: 0, storedMs: 0 };

/** Statuses after which the same request may succeed later (the OTLP/HTTP specification's list). */
const RETRYABLE = new Set([0, 408, 429, 502, 503, 504]);
const MAX_RETRY_AFTER_MS = 5 * 60_000;

export class OtlpSink implements FlowSink {
  readonly name: string;
  private readonly log: Logger;
  private readonly maxBuffered: number;
  private readonly batchSize: number;
  private readonly maxInFlight: number;
  private readonly flushIntervalMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly sendBatch: SendBatch;
  private readonly worker: SinkWorker | undefined;
  /** waiting flows: segments[head…], each from its `first` record on */
  private segments: Segment[] = [];
  private head = 0;
  private waitingCount = 0;
  /** batches handed on, not answered yet */
  private readonly inFlight = new Set<Batch>();
  /** batches the receiver failed, to be sent again (oldest first) */
  private retryQueue: Batch[] = [];
  /** flows in the batches in flight and to be sent again */
  private cutCount = 0;
  private nextSeq = 1;
  /** batches that may be in flight now: opens by one per delivered batch, back to one on a failure */
  private window = 1;
  private readonly c = { accepted: 0, delivered: 0, lost: 0 };
  /** failed answers since the last delivered batch */
  private failures = 0;
  /** a partial batch is sent when this fires */
  private flushTimer: NodeJS.Timeout | undefined;
  private flushDue = false;
  /** nothing is sent before this fires */
  private backoffTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private closed = false;
  private lastLossLog = 0;
  private drained: (() => void) | undefined;

  constructor(private readonly opts: OtlpSinkOptions) {
    this.name = opts.name;
    this.log = opts.log.child({ component: 'flow-sink', sink: opts.name });
    this.maxBuffered = opts.maxBuffered ?? 100_000;
    this.batchSize = Math.min(opts.batchSize ?? 1000, this.maxBuffered);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
    this.flushIntervalMs = opts.flushIntervalMs ?? 1000;
    this.retryMinMs = opts.retryMinMs ?? 500;
    this.retryMaxMs = opts.retryMaxMs ?? 30_000;
    if (opts.send) this.sendBatch = opts.send;
    else {
      const worker = new SinkWorker({ url: opts.url.href, timeoutMs: opts.requestTimeoutMs ?? 10_000, resource: opts.resource ?? {}, maxInFlight: this.maxInFlight });
      this.worker = worker;
      this.sendBatch = worker.send;
    }
  }

  write(batch: StoredBatch): void {
    const n = batch.count;
    if (n === 0) return;
    this.c.accepted += n;
    if (this.closed) return this.lose(n, 'shutdown');
    let seg: Segment;
    try {
      // the agent's frame as it arrived (its records are not read here); without one, one like it
      const frame = batch.frame ?? Buffer.from(JSON.stringify({ flows: batch.entries().map((e) => e.record) }));
      seg = { frame, first: 0, count: n, storedMs: Date.now() };
    } catch (err) {
      this.log.error({ err, flows: n }, 'flows could not be encoded; counted lost');
      return this.lose(n, 'refused');
    }
    const over = n - (this.maxBuffered - this.buffered());
    if (over > 0) {
      // the oldest waiting flows make room; what no waiting flow can make room for is dropped
      const fromWaiting = Math.min(over, this.waitingCount);
      this.take(fromWaiting, undefined);
      seg.first = over - fromWaiting;
      this.lose(over, 'buffer-full');
    }
    if (seg.first < seg.count) {
      this.segments.push(seg);
      this.waitingCount += seg.count - seg.first;
    }
    this.pump();
  }

  counts(): SinkCounts {
    return { ...this.c, buffered: this.buffered() };
  }

  /** Whether the last answer was a failure and the sink is waiting to try again. */
  get retrying(): boolean {
    return this.failures > 0;
  }

  /** Batches in flight now (tests). */
  get requestsInFlight(): number {
    return this.inFlight.size;
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
        this.pump(); // what waits goes now, partial batches included
      });
    }
    this.closed = true;
    for (const t of [this.flushTimer, this.backoffTimer]) if (t !== undefined) clearTimeout(t);
    this.flushTimer = this.backoffTimer = undefined;
    const left = this.buffered();
    this.segments = [];
    this.head = 0;
    this.waitingCount = 0;
    this.inFlight.clear();
    this.retryQueue = [];
    this.cutCount = 0;
    if (left > 0) this.lose(left, 'shutdown');
    await this.worker?.close();
    this.log.info({ ...this.counts() }, 'flow sink closed');
  }

  private buffered(): number {
    return this.waitingCount + this.cutCount;
  }

  /** The `n` oldest waiting flows leave the buffer; they go to `pieces` when given (else they are dropped). */
  private take(n: number, pieces: FlowPiece[] | undefined): void {
    this.waitingCount -= n;
    while (n > 0) {
      const seg = this.segments[this.head]!;
      const k = Math.min(n, seg.count - seg.first);
      if (pieces !== undefined) pieces.push({ frame: seg.frame, skip: seg.first, count: k, storedMs: seg.storedMs });
      seg.first += k;
      n -= k;
      if (seg.first === seg.count) this.segments[this.head++] = EMPTY;
    }
    if (this.head > 1024 && this.head * 2 > this.segments.length) {
      this.segments = this.segments.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Hand on what may go now, within the window: batches to send again first, then full batches,
   * then a partial one once the flush interval passed (or the sink is closing). No timer between a
   * full batch and its request: the collector's thread is often busy, each turn of its loop counts.
   */
  private pump(): void {
    if (this.closed || this.backoffTimer !== undefined) return;
    let cut = false;
    while (this.inFlight.size < this.window) {
      let batch = this.retryQueue.shift();
      if (batch === undefined) {
        if (this.waitingCount === 0 || (this.waitingCount < this.batchSize && !this.flushDue && !this.closing)) break;
        const count = Math.min(this.batchSize, this.waitingCount);
        const pieces: FlowPiece[] = [];
        this.take(count, pieces);
        this.cutCount += count;
        batch = { seq: this.nextSeq++, count, pieces, failures: 0 };
        cut = true;
      }
      this.attempt(batch);
    }
    // the flush interval counts from the last batch cut: what is left of a batch goes with the next full one, or then
    if (cut && this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.waitingCount === 0) this.flushDue = false;
    else if (!this.flushDue && this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flushDue = true;
        this.pump();
      }, this.flushIntervalMs);
      this.flushTimer.unref();
    }
    if (this.buffered() === 0) this.drained?.();
  }

  /** Send a batch (again): its pieces are encoded anew each time (a retry is rare). */
  private attempt(batch: Batch): void {
    this.inFlight.add(batch);
    this.sendBatch(batch.pieces).then(
      (r) => this.answered(batch, r),
      (err: unknown) => this.answered(batch, { status: 0, error: String((err as Error)?.message ?? err), unencoded: 0 }),
    );
  }

  private answered(batch: Batch, r: SendResult): void {
    if (this.closed || !this.inFlight.delete(batch)) return;
    if (r.status >= 200 && r.status < 300) {
      this.cutCount -= batch.count;
      if (this.failures > 0) this.log.info({ status: r.status, failures: this.failures }, 'flow sink receiver is back');
      this.failures = 0;
      this.window = Math.min(this.maxInFlight, this.window + 1);
      if (r.unencoded > 0) {
        this.log.error({ error: r.encodeError, flows: r.unencoded }, 'flows could not be encoded; counted lost');
        this.lose(r.unencoded, 'refused');
      }
      const sent = batch.count - r.unencoded;
      if (sent > 0) {
        this.c.delivered += sent;
        this.opts.metrics?.delivered(this.name, sent);
      }
      return this.pump();
    }
    if (RETRYABLE.has(r.status)) return this.failed(batch, r);
    this.log.error({ status: r.status, flows: batch.count }, 'flow sink receiver refused a batch; counted lost');
    this.cutCount -= batch.count;
    this.failures = 0;
    this.lose(batch.count, 'refused');
    this.pump();
  }

  /** A retryable failure: the batch waits (oldest first) for a backoff, during which nothing is sent; one at a time after it. */
  private failed(batch: Batch, r: SendResult): void {
    this.failures++;
    batch.failures++;
    this.window = 1;
    let at = this.retryQueue.findIndex((b) => b.seq > batch.seq);
    if (at < 0) at = this.retryQueue.length;
    this.retryQueue.splice(at, 0, batch);
    const backoff = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(batch.failures - 1, 20));
    const wait = r.retryAfterMs !== undefined ? Math.min(Math.max(r.retryAfterMs, this.retryMinMs), MAX_RETRY_AFTER_MS) : backoff;
    if (this.failures === 1 || this.failures % 10 === 0) {
      this.log.warn({ status: r.status, error: r.error, failures: this.failures, retryInMs: wait, buffered: this.buffered() }, 'flow sink receiver unavailable; retrying');
    }
    if (this.closing) {
      // closing: no retry; the grace ends once no other batch is still out (their answers may yet deliver them)
      if (this.inFlight.size === 0) this.drained?.();
      return;
    }
    // the batches still out were sent before this answer: the first failure's backoff holds for them
    if (this.backoffTimer !== undefined) return;
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      this.pump();
    }, wait);
    this.backoffTimer.unref();
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
