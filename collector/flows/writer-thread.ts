/**
 * The collector's side of the flow store's writer thread (collector/flows/writer-worker.ts): a
 * batch goes over as one message and its promise settles once the thread committed it — the
 * agent is acknowledged only then. At most `maxQueuedFlows` flows wait for the thread: past
 * that a batch is refused (PALISADE_ERR_COLLECTOR_UNAVAILABLE, counted by the caller) and the
 * agent sends it again later. A thread that dies fails what it held (never acknowledged, so
 * sent again) and is started again, 100 ms → 5 s apart.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { RetentionMetrics, RetentionOptions } from './retention';
import type { FlowRecord } from '../../common/flow';
import { FlowsFrameRefusal } from './flows-frame';
import type { BatchMeta, Committed } from './writer';

/** Flows waiting for the writer thread before batches are refused (100 of the agents' 500-flow batches). */
export const DEFAULT_WRITER_QUEUE_FLOWS = 50_000;
/**
 * Buffers a frame is copied into for the thread, kept when it hands them back: a fresh 300 KiB
 * buffer per frame is memory the kernel maps and faults in page by page, then unmaps again.
 */
const SPARE_BUFFERS = 16;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5_000;

export type ToWriter =
  | { type: 'commit'; id: number; meta: BatchMeta; jsons: string }
  /** an agent's flows frame (flows-frame.ts), its envelope read as `meta` */
  /** `flows`: the records the collector counted (what it charged for); the thread refuses a frame that holds another number */
  | { type: 'frame'; id: number; meta: BatchMeta; bytes: Uint8Array; flows: number }
  | { type: 'enforce'; id: number }
  | { type: 'close'; id: number };

export type FromWriter =
  | { type: 'ready'; rows: number }
  /** frames' buffers the thread has read, handed back to be filled again (commitFrame) */
  | { type: 'buffers'; buffers: ArrayBuffer[] }
  | ({ type: 'committed'; id: number } & FrameCommitted)
  | { type: 'failed'; id: number; message: string }
  /** a frame refused before anything of it was stored: `protocol` (hostile or broken; `wrongNode`: a record of another node), else unreadable */
  | { type: 'refused'; id: number; message: string; protocol: boolean; wrongNode?: boolean }
  | { type: 'enforced'; id: number; deleted: number }
  | { type: 'closed'; id: number }
  | { type: 'deleted'; count: number }
  | { type: 'deleted-pass'; count: number; reason: 'age' | 'size' }
  | { type: 'log'; line: string };

export interface WriterThreadOptions {
  file: string;
  retention: RetentionOptions;
  log: Logger;
  metrics?: RetentionMetrics;
  /** Retention deleted `count` rows. */
  onDeleted: (count: number) => void;
  /**
   * The thread opened the database and counted `rows` flow rows — at the start and after every
   * restart, when a batch it committed just before dying (its 'committed' never arrived) is in
   * the database but was never counted here.
   */
  onReady?: (rows: number) => void;
  maxQueuedFlows?: number;
}

/** A commit's answer: what writer.ts Committed says and, for a frame, its denied records. */
export interface FrameCommitted extends Committed {
  denied?: FlowRecord[];
}

interface Pending {
  resolve: (v: never) => void;
  reject: (err: Error) => void;
  flows: number;
}

/** The batch cannot be taken now: the agent keeps it and sends it again (never acknowledged). */
export const unavailable = (why: string): PalisadeError => new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', why);

export class WriterThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly spare: ArrayBuffer[] = [];
  private readonly maxQueuedFlows: number;
  private queuedFlows = 0;
  private nextId = 1;
  private restartMs = RESTART_MIN_MS;
  private restarts = 0;
  private closing = false;

  private constructor(private readonly opts: WriterThreadOptions) {
    this.maxQueuedFlows = opts.maxQueuedFlows ?? DEFAULT_WRITER_QUEUE_FLOWS;
  }

  /** Start the thread; resolves once it opened the database. */
  static async start(opts: WriterThreadOptions): Promise<WriterThread> {
    const t = new WriterThread(opts);
    await t.spawn();
    return t;
  }

  /** Flows sent to the thread and not yet committed. */
  get queued(): number {
    return this.queuedFlows;
  }

  /** Times the thread died and was started again. */
  get restarted(): number {
    return this.restarts;
  }

  /** Commit one batch; throws `unavailable` at once when the queue is full or the thread is down. */
  commit(meta: BatchMeta, jsons: readonly string[]): Promise<FrameCommitted> {
    this.mayQueue(jsons.length);
    return this.request({ type: 'commit', id: 0, meta, jsons: jsons.join('\n') }, jsons.length);
  }

  private mayQueue(flows: number): void {
    if (this.closing) throw unavailable('the flow store is closing');
    if (!this.worker) throw unavailable('the flow writer thread is restarting');
    if (this.queuedFlows > 0 && this.queuedFlows + flows > this.maxQueuedFlows) {
      throw unavailable(`${this.queuedFlows} flows are waiting to be stored (at most ${this.maxQueuedFlows})`);
    }
  }

  /**
   * Parse, check and commit an agent's flows frame there (`flows`: its records as counted before,
   * for the queue); throws `unavailable` at once like `commit`, rejects with FlowsFrameRefusal for
   * a frame refused as a whole.
   */
  commitFrame(meta: BatchMeta, frame: Uint8Array, flows: number): Promise<FrameCommitted> {
    this.mayQueue(flows);
    // a copy of its own, handed over (the frame itself stays with the collector's sinks), in a buffer the thread gave back when one is big enough
    const at = this.spare.findIndex((b) => b.byteLength >= frame.byteLength);
    const buffer = at >= 0 ? this.spare.splice(at, 1)[0]! : new ArrayBuffer(frame.byteLength);
    const bytes = new Uint8Array(buffer, 0, frame.byteLength);
    bytes.set(frame);
    return this.request({ type: 'frame', id: 0, meta, bytes, flows }, flows, [buffer]);
  }

  /** Run retention now in the thread; resolves to the rows deleted. */
  enforce(): Promise<number> {
    if (!this.worker) return Promise.reject(unavailable('the flow writer thread is restarting'));
    return this.request({ type: 'enforce', id: 0 }, 0);
  }

  /** Wait for what was sent, stop retention, close the thread's database and end it. */
  async close(): Promise<void> {
    if (this.closing) return;
    const w = this.worker;
    this.closing = true;
    if (!w) return;
    await this.request({ type: 'close', id: 0 }, 0).catch(() => undefined);
    await w.terminate();
  }

  /** End the thread as a crash would (tests): what it held fails, and it is started again. */
  async crash(): Promise<void> {
    await this.worker?.terminate();
  }

  private request<T>(m: ToWriter, flows: number, transfer?: ArrayBuffer[]): Promise<T> {
    const id = this.nextId++;
    this.queuedFlows += flows;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject, flows });
      m.id = id;
      this.worker!.postMessage(m, transfer);
    });
  }

  private spawn(): Promise<void> {
    const w = new Worker(path.join(__dirname, 'writer-worker.js'), {
      name: 'flow-writer', // the thread's name in top -H and /proc (benches count its CPU by it)
      workerData: { file: this.opts.file, retention: this.opts.retention, level: this.opts.log.level },
    });
    this.worker = w;
    return new Promise<void>((resolve, reject) => {
      w.on('message', (m: FromWriter) => {
        if (m.type === 'ready') {
          this.restartMs = RESTART_MIN_MS;
          this.opts.onReady?.(m.rows);
          resolve();
        } else this.onMessage(m);
      });
      w.once('error', (err) => {
        this.opts.log.error({ err }, 'flow writer thread failed');
        reject(err);
      });
      w.once('exit', (code) => {
        if (this.worker === w) this.worker = undefined;
        this.failPending(`the flow writer thread exited (code ${code})`);
        if (this.closing) return;
        this.opts.log.error({ code, restartInMs: this.restartMs }, 'flow writer thread exited; starting it again');
        this.restarts++;
        const delay = this.restartMs;
        this.restartMs = Math.min(this.restartMs * 2, RESTART_MAX_MS);
        setTimeout(() => {
          if (!this.closing) this.spawn().catch(() => undefined);
        }, delay).unref();
        resolve(); // a thread that dies before it is ready is started again like one that dies later
      });
    });
  }

  private onMessage(m: Exclude<FromWriter, { type: 'ready' }>): void {
    if (m.type === 'log') return this.relog(m.line);
    if (m.type === 'buffers') return void this.spare.push(...m.buffers.slice(0, SPARE_BUFFERS - this.spare.length));
    if (m.type === 'deleted') return this.opts.onDeleted(m.count);
    if (m.type === 'deleted-pass') return this.opts.metrics?.deleted(m.count, m.reason);
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    this.queuedFlows -= p.flows;
    if (m.type === 'failed') p.reject(new PalisadeError('PALISADE_ERR_INTERNAL', m.message));
    else if (m.type === 'refused') p.reject(m.protocol ? new FlowsFrameRefusal(m.message, m.wrongNode) : new PalisadeError('PALISADE_ERR_INTERNAL', m.message));
    else if (m.type === 'committed') p.resolve({ ids: m.ids, late: m.late, rollupFloor: m.rollupFloor, denied: m.denied } as never);
    else if (m.type === 'enforced') p.resolve(m.deleted as never);
    else p.resolve(undefined as never);
  }

  private failPending(why: string): void {
    for (const p of this.pending.values()) p.reject(unavailable(why));
    this.pending.clear();
    this.queuedFlows = 0;
  }

  /** A line the thread logged, through the collector's logger. */
  private relog(line: string): void {
    try {
      const { level, msg, time: _t, pid: _p, hostname: _h, ...rest } = JSON.parse(line) as Record<string, unknown> & { level: number; msg?: string };
      const fields = { component: 'flow-writer', ...rest };
      if (level >= 50) this.opts.log.error(fields, msg);
      else if (level >= 40) this.opts.log.warn(fields, msg);
      else if (level >= 30) this.opts.log.info(fields, msg);
      else this.opts.log.debug(fields, msg);
    } catch {
      this.opts.log.warn({ line: line.slice(0, 200) }, 'unreadable log line from the flow writer thread');
    }
  }
}
