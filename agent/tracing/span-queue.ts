/**
 * The tracer's export queue, in place of the SDK's BatchSpanProcessor (which drops spans silently
 * when its queue is full): ended spans wait in a bounded queue and go to the OTLP exporter in
 * batches (every interval, or at once when a batch is full; one export at a time). Every span is
 * counted once: exported, export-failed (the exporter gave up on its batch) or queue-full (no room
 * when it ended) — `palisade_trace_spans_total{outcome}`.
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';

export interface SpanCounts {
  exported: number;
  'export-failed': number;
  'queue-full': number;
}

export interface SpanQueueOptions {
  maxQueue?: number;
  maxBatch?: number;
  intervalMs?: number;
}

export class SpanQueue {
  /** waiting spans: queue[head…] */
  private queue: ReadableSpan[] = [];
  private head = 0;
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly intervalMs: number;
  private exporting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  readonly counts: SpanCounts = { exported: 0, 'export-failed': 0, 'queue-full': 0 };

  constructor(
    private readonly exporter: SpanExporter,
    opts: SpanQueueOptions = {},
  ) {
    this.maxQueue = opts.maxQueue ?? 8192;
    this.maxBatch = opts.maxBatch ?? 512;
    this.intervalMs = opts.intervalMs ?? 1000;
  }

  /** Whether there is room for `n` more spans now. */
  hasRoom(n: number): boolean {
    return !this.closed && this.waiting() + n <= this.maxQueue;
  }

  /** Count `n` spans that found no room (a hop's spans go together or not at all). */
  refuse(n: number): void {
    this.counts['queue-full'] += n;
  }

  /** Queue an ended span; counted queue-full when there is no room. */
  add(span: ReadableSpan): void {
    if (!this.hasRoom(1)) return this.refuse(1);
    this.queue.push(span);
    if (this.waiting() >= this.maxBatch) this.kick(0);
    else if (this.timer === undefined) this.kick(this.intervalMs);
  }

  /** Export everything queued now. */
  async flush(): Promise<void> {
    while (this.exporting !== undefined || this.waiting() > 0) {
      if (this.exporting === undefined) this.exportBatch();
      await this.exporting;
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.exporter.shutdown();
  }

  private kick(ms: number): void {
    if (this.timer !== undefined) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.exporting === undefined) this.exportBatch();
    }, ms);
    this.timer.unref();
  }

  private waiting(): number {
    return this.queue.length - this.head;
  }

  private exportBatch(): void {
    if (this.waiting() === 0) return;
    const end = Math.min(this.queue.length, this.head + this.maxBatch);
    const batch = this.queue.slice(this.head, end);
    this.head = end;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.exporting = new Promise<void>((resolve) => {
      let settled = false;
      const done = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        this.counts[ok ? 'exported' : 'export-failed'] += batch.length;
        this.exporting = undefined;
        if (this.waiting() > 0) this.kick(this.waiting() >= this.maxBatch ? 0 : this.intervalMs);
        resolve();
      };
      try {
        this.exporter.export(batch, (r) => done(r.code === ExportResultCode.SUCCESS));
      } catch {
        done(false);
      }
    });
  }
}
