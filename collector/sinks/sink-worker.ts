/**
 * The collector's side of the OTLP flow sink's worker thread (otlp-sink-worker.ts): a batch's
 * frames are copied once into one buffer that is transferred (not copied again) to the thread,
 * which encodes and POSTs them and answers, giving the buffer back: a later batch is copied into
 * one of the buffers given back when it fits (no buffer allocated, page-faulted and collected per
 * batch; as many kept as batches may be in flight). Several batches may be in the thread at once
 * (it encodes the next while earlier POSTs are out). The thread starts with the first batch; if it
 * dies, the batches it held are answered as "no answer" (the sink sends them again) and the next
 * batch starts a new one.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FlowPiece, SendResult } from './otlp-batch';

export interface SinkWorkerInit {
  url: string;
  timeoutMs: number;
  resource: Record<string, string>;
  /** batches the sink has in flight at most: the thread's connections, and the buffers kept */
  maxInFlight?: number;
}

/** A batch as posted: the frames' bytes, and each piece's place in them. */
export interface BatchMessage {
  id: number;
  bytes: ArrayBuffer;
  pieces: Array<{ start: number; end: number; skip: number; count: number; storedMs: number }>;
}

/** The thread's answer to a batch: its result, and the batch's buffer given back. */
export type BatchAnswer = SendResult & { id: number; bytes?: ArrayBuffer };

export class SinkWorker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, (r: SendResult) => void>();
  private nextId = 1;
  /** buffers the thread gave back, biggest last; at most maxInFlight kept */
  private readonly spares: ArrayBuffer[] = [];
  private allocations = 0;

  constructor(private readonly init: SinkWorkerInit) {}

  /** Buffers allocated for batches so far (tests: one is reused while batches fit in it). */
  get buffersAllocated(): number {
    return this.allocations;
  }

  readonly send = (pieces: readonly FlowPiece[]): Promise<SendResult> =>
    new Promise((resolve) => {
      let size = 0;
      for (const p of pieces) size += p.frame.byteLength;
      const bytes = this.buffer(size);
      const meta: BatchMessage['pieces'] = [];
      let at = 0;
      for (const p of pieces) {
        bytes.set(p.frame, at);
        meta.push({ start: at, end: at + p.frame.byteLength, skip: p.skip, count: p.count, storedMs: p.storedMs });
        at += p.frame.byteLength;
      }
      const id = this.nextId++;
      this.pending.set(id, resolve);
      const message: BatchMessage = { id, bytes: bytes.buffer as ArrayBuffer, pieces: meta };
      this.thread().postMessage(message, [message.bytes]);
    });

  /** `size` bytes on an ArrayBuffer of their own (transferable): the smallest spare one big enough, if any. */
  private buffer(size: number): Buffer {
    const i = this.spares.findIndex((b) => b.byteLength >= size);
    if (i >= 0) return Buffer.from(this.spares.splice(i, 1)[0]!, 0, size);
    this.allocations++;
    // room for a batch a quarter bigger: batches' frames differ a little in size
    return Buffer.from(new ArrayBuffer(size + (size >> 2)), 0, size);
  }

  /** A buffer given back: kept (in size order) unless as many bigger ones are kept as batches may be in flight. */
  private keep(bytes: ArrayBuffer): void {
    let at = this.spares.findIndex((b) => b.byteLength > bytes.byteLength);
    if (at < 0) at = this.spares.length;
    this.spares.splice(at, 0, bytes);
    if (this.spares.length > Math.max(1, this.init.maxInFlight ?? 1)) this.spares.shift();
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.settleAll('the flow sink is closing');
    if (w) await w.terminate();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(path.join(__dirname, 'otlp-sink-worker.js'), {
      name: 'otlp-sink', // the thread's name in top -H and /proc (the sink bench counts its CPU by it)
      workerData: this.init,
      resourceLimits: { maxOldGenerationSizeMb: 256 },
    });
    w.unref();
    w.on('message', (answer: BatchAnswer) => {
      const { id, bytes, ...r } = answer;
      if (bytes !== undefined) this.keep(bytes);
      const done = this.pending.get(id);
      this.pending.delete(id);
      done?.(r);
    });
    const gone = (why: string): void => {
      if (this.worker !== w) return;
      this.worker = undefined;
      this.settleAll(why);
    };
    w.on('error', (err) => gone(`the flow sink's thread failed: ${err.message}`));
    w.on('exit', (code) => gone(`the flow sink's thread exited (${code})`));
    this.worker = w;
    return w;
  }

  private settleAll(why: string): void {
    for (const done of this.pending.values()) done({ status: 0, error: why, unencoded: 0 });
    this.pending.clear();
  }
}
