/**
 * The collector's side of the OTLP flow sink's worker thread (otlp-sink-worker.ts): a batch's
 * frames are copied once into one buffer that is transferred (not copied again) to the thread,
 * which encodes and POSTs them and answers, giving the buffer back: the next batch is copied into
 * it when it fits (no buffer allocated, page-faulted and collected per batch). The thread starts
 * with the first batch; if it dies, the batches it held are answered as "no answer" (the sink
 * sends them again) and the next batch starts a new one.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FlowPiece, SendResult } from './otlp-batch';

export interface SinkWorkerInit {
  url: string;
  timeoutMs: number;
  resource: Record<string, string>;
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
  /** the buffer the thread gave back with its last answer */
  private spare: ArrayBuffer | undefined;
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

  /** `size` bytes on an ArrayBuffer of their own (transferable): the spare one when it is big enough. */
  private buffer(size: number): Buffer {
    const spare = this.spare;
    this.spare = undefined;
    if (spare !== undefined && spare.byteLength >= size) return Buffer.from(spare, 0, size);
    this.allocations++;
    // room for a batch a quarter bigger: batches' frames differ a little in size
    return Buffer.from(new ArrayBuffer(size + (size >> 2)), 0, size);
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
      if (bytes !== undefined && (this.spare === undefined || bytes.byteLength > this.spare.byteLength)) this.spare = bytes;
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
