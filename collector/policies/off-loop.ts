/**
 * Work the collector must not do on its event loop (parsing policy files, replaying stored flows)
 * runs in one worker thread (policy-worker.ts), one job at a time, within budgets: a job that
 * takes longer than `deadlineMs` is stopped (the thread is terminated, a new one serves the next
 * job) and refused in one line; the thread's heap is capped, and a job that exhausts it is
 * refused the same way; at most `maxQueued` jobs wait, more are refused as busy (503) rather than
 * queued without end. Idle for a while, the thread is stopped. The job's kind and fields, and
 * the plain-data answer, are policy-worker.ts's.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { invalidArgument, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { PolicyInvalidError } from '../../common/policy';

/** A job as posted: its kind and fields, and the id its reply carries back. */
export interface OffLoopJob {
  id: number;
  kind: string;
}

export type OffLoopReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; problems: readonly string[] } | { id: number; ok: false; error: string };

export interface OffLoopOptions {
  log: Logger;
  /** What the jobs are, for messages ("policy files", "stored flows"). */
  what: string;
  /** The thread's name in `top -H` and /proc (15 characters at most there). */
  name?: string;
  /** What to do about a job past its deadline ("split them"). */
  tooLongHint: string;
  /** Longest a job may take (counted from when the thread can start it). */
  deadlineMs: number;
  /** Jobs that may wait behind the running one (default 8). */
  maxQueued?: number;
  /** The thread's V8 heap, MB (default 256). */
  maxHeapMb?: number;
  /** Stop an idle thread after this long (default 30 s; Infinity: never, the thread stays warm). */
  idleMs?: number;
}

interface Pending {
  job: OffLoopJob;
  deadlineMs: number;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  timer?: NodeJS.Timeout;
}

const stopping = (): PalisadeError => new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'the collector is stopping');

export class OffLoop {
  private worker: Worker | undefined;
  private readonly online = new WeakSet<Worker>();
  private running: Pending | undefined;
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: OffLoopOptions) {}

  /**
   * Run `job` in the thread; its answer, or PolicyInvalidError, INVALID_ARGUMENT (budgets), COLLECTOR_UNAVAILABLE (busy).
   * `deadlineMs`: this job's time budget, instead of the thread's.
   */
  run<T>(job: Omit<OffLoopJob, 'id'> & Record<string, unknown>, deadlineMs = this.opts.deadlineMs): Promise<T> {
    if (this.closed) return Promise.reject(stopping());
    if (this.queue.length >= (this.opts.maxQueued ?? 8)) {
      return Promise.reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `the collector is busy reading other ${this.opts.what}: try again in a moment`));
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ job: { ...job, id: this.nextId++ }, deadlineMs, resolve: resolve as (v: unknown) => void, reject });
      this.next();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(stopping());
    this.finish((p) => p.reject(stopping()));
    if (this.idleTimer) clearTimeout(this.idleTimer);
    await this.stopWorker();
  }

  private next(): void {
    if (this.running || this.closed) return;
    const pending = this.queue.shift();
    if (!pending) return this.armIdle();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.running = pending;
    const worker = this.ensureWorker();
    // The budget counts from when the thread can start (a new thread takes a moment to load).
    const arm = (): void => {
      if (this.running !== pending) return;
      pending.timer = setTimeout(() => {
        this.opts.log.warn({ reason: 'time budget exceeded', deadlineMs: pending.deadlineMs, kind: pending.job.kind }, 'off-loop job refused');
        void this.stopWorker(); // first: the next job gets a new thread
        this.finish((p) => p.reject(invalidArgument(`${this.opts.what} took longer than ${pending.deadlineMs} ms to read (the limit): ${this.opts.tooLongHint}`)));
      }, pending.deadlineMs);
    };
    if (this.online.has(worker)) arm();
    else worker.once('online', arm);
    worker.postMessage(pending.job);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(path.join(__dirname, 'policy-worker.js'), {
      ...(this.opts.name === undefined ? {} : { name: this.opts.name }),
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb ?? 256, maxYoungGenerationSizeMb: 32 },
    });
    w.unref();
    w.once('online', () => this.online.add(w));
    w.on('message', (reply: OffLoopReply) => this.onReply(reply));
    w.on('error', (err: Error & { code?: string }) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      this.opts.log.warn({ reason: err.message, code: err.code }, 'off-loop worker failed');
      const outOfMemory = err.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.finish((p) => p.reject(outOfMemory ? invalidArgument(`${this.opts.what} too large to read (the worker ran out of its memory budget): ${this.opts.tooLongHint}`) : err));
    });
    w.on('exit', () => {
      if (this.worker !== w) return; // stopped on purpose
      this.worker = undefined;
      // a job the thread died under must not wait forever
      this.finish((p) => p.reject(new PalisadeError('PALISADE_ERR_INTERNAL', 'the off-loop worker stopped')));
    });
    this.worker = w;
    return w;
  }

  private onReply(reply: OffLoopReply): void {
    if (!this.running || this.running.job.id !== reply.id) return; // an answer after its deadline
    if (reply.ok) this.finish((p) => p.resolve(reply.value));
    else if ('problems' in reply) this.finish((p) => p.reject(new PolicyInvalidError(reply.problems)));
    else this.finish((p) => p.reject(new PalisadeError('PALISADE_ERR_INTERNAL', `cannot read ${this.opts.what}: ${reply.error}`)));
  }

  /** Settle the running job (if any) and start the next. */
  private finish(settle: (p: Pending) => void): void {
    const r = this.running;
    if (!r) return;
    this.running = undefined;
    clearTimeout(r.timer);
    settle(r);
    this.next();
  }

  private armIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const idleMs = this.opts.idleMs ?? 30_000;
    if (!this.worker || !Number.isFinite(idleMs)) return;
    this.idleTimer = setTimeout(() => void this.stopWorker(), idleMs);
    this.idleTimer.unref();
  }

  private async stopWorker(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
