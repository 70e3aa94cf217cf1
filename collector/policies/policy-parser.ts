/**
 * Policy files from the API are read off the event loop, within budgets. The YAML parser costs
 * microseconds per byte (seconds for a large file on a busy machine), so the collector never runs
 * it on its event loop for a request: `parse(files)` first checks what costs nothing (sizes, the
 * alias scan of common/yaml-limits.ts — an alias bomb is refused here, before any parsing), then
 * hands the files to one worker thread (parse-worker.ts) and answers with the policies as plain
 * data, or every problem (PolicyInvalidError) as compiling them anywhere else would.
 *
 * Budgets: a job that takes longer than `deadlineMs` is stopped (the worker is terminated and a
 * new one started for the next job) and refused in one line; the worker's heap is capped, and a
 * job that exhausts it is refused the same way; at most `maxQueued` jobs wait, more are refused
 * as busy (503) rather than queued without end. Idle for a while, the worker is stopped.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { invalidArgument, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { PolicyKind } from '../../common/control-api';
import { PolicyInvalidError } from '../../common/policy';
import { MAX_POLICY_FILE_BYTES, type PolicyFile } from '../../common/policy-files';
import { aliasScanProblem, lineOfOffset } from '../../common/yaml-limits';

/** A policy as the worker read it: enough to store it and compile it again from its manifest. */
export interface ParsedPolicy {
  kind: PolicyKind;
  namespace: string;
  name: string;
  source: string;
  line: number;
  manifest: Record<string, unknown>;
}

export interface ParsedPolicies {
  policies: ParsedPolicy[];
  warnings: string[];
}

export interface ParseJob {
  id: number;
  files: PolicyFile[];
}

export type ParseReply =
  | ({ id: number; ok: true } & ParsedPolicies)
  | { id: number; ok: false; problems: readonly string[] }
  | { id: number; ok: false; error: string };

export interface PolicyParserOptions {
  log: Logger;
  /** Longest a job may take (default 5 s). */
  deadlineMs?: number;
  /** Jobs that may wait behind the running one (default 8). */
  maxQueued?: number;
  /** The worker's V8 heap, MB (default 256). */
  maxHeapMb?: number;
  /** Stop an idle worker after this long (default 30 s). */
  idleMs?: number;
}

export const DEFAULT_PARSE_DEADLINE_MS = 5_000;

interface Pending {
  job: ParseJob;
  resolve: (r: ParsedPolicies) => void;
  reject: (err: unknown) => void;
}

export class PolicyParser {
  private worker: Worker | undefined;
  private running: (Pending & { timer?: NodeJS.Timeout }) | undefined;
  private readonly online = new WeakSet<Worker>();
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly log: Logger;

  constructor(private readonly opts: PolicyParserOptions) {
    this.log = opts.log.child({ component: 'policy-parser' });
  }

  /** The policies in `files`, read in the worker; throws PolicyInvalidError, INVALID_ARGUMENT (budgets) or COLLECTOR_UNAVAILABLE (busy). */
  parse(files: PolicyFile[]): Promise<ParsedPolicies> {
    const early = budgetProblems(files);
    if (early.length > 0) return Promise.reject(new PolicyInvalidError(early));
    if (this.closed) return Promise.reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'the collector is stopping'));
    if (this.queue.length >= (this.opts.maxQueued ?? 8)) {
      return Promise.reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'the collector is busy reading other policy files: try again in a moment'));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, files }, resolve, reject });
      this.next();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'the collector is stopping'));
    if (this.running) this.finish((p) => p.reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'the collector is stopping')));
    await this.stopWorker();
  }

  private next(): void {
    if (this.running || this.closed) return;
    const pending = this.queue.shift();
    if (!pending) return this.armIdle();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const deadlineMs = this.opts.deadlineMs ?? DEFAULT_PARSE_DEADLINE_MS;
    const running: Pending & { timer?: NodeJS.Timeout } = { ...pending };
    this.running = running;
    const worker = this.ensureWorker();
    // The budget counts from when the worker can start (a new thread takes a moment to load).
    const arm = (): void => {
      if (this.running !== running) return;
      running.timer = setTimeout(() => {
        this.log.warn({ reason: 'parse budget exceeded', deadlineMs, files: pending.job.files.length }, 'policy files refused');
        void this.stopWorker(); // first: the next job gets a new worker
        this.finish((p) => p.reject(invalidArgument(`policy files took longer than ${deadlineMs} ms to read (the limit): split them or simplify them`)));
      }, deadlineMs);
    };
    if (this.online.has(worker)) arm();
    else worker.once('online', arm);
    worker.postMessage(pending.job);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(path.join(__dirname, 'parse-worker.js'), {
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb ?? 256, maxYoungGenerationSizeMb: 32 },
    });
    w.unref();
    w.once('online', () => this.online.add(w));
    w.on('message', (reply: ParseReply) => this.onReply(reply));
    w.on('error', (err: Error & { code?: string }) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      this.log.warn({ reason: err.message, code: err.code }, 'policy parse worker failed');
      const outOfMemory = err.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.finish((p) => p.reject(outOfMemory ? invalidArgument('policy files too large to read (the parser ran out of its memory budget): split them') : err));
    });
    w.on('exit', () => {
      if (this.worker !== w) return; // stopped on purpose
      this.worker = undefined;
      // a job the worker died under must not wait forever
      this.finish((p) => p.reject(new PalisadeError('PALISADE_ERR_INTERNAL', 'the policy parser stopped')));
    });
    this.worker = w;
    return w;
  }

  private onReply(reply: ParseReply): void {
    if (!this.running || this.running.job.id !== reply.id) return; // an answer after its deadline
    if (reply.ok) this.finish((p) => p.resolve({ policies: reply.policies, warnings: reply.warnings }));
    else if ('problems' in reply) this.finish((p) => p.reject(new PolicyInvalidError(reply.problems)));
    else this.finish((p) => p.reject(new PalisadeError('PALISADE_ERR_INTERNAL', `cannot read policy files: ${reply.error}`)));
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
    if (!this.worker) return;
    this.idleTimer = setTimeout(() => void this.stopWorker(), this.opts.idleMs ?? 30_000);
    this.idleTimer.unref();
  }

  private async stopWorker(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}

/** What is refused before any parsing: a file over the size limit, an alias bomb. One line each. */
export function budgetProblems(files: readonly PolicyFile[]): string[] {
  const problems: string[] = [];
  for (const f of files) {
    const bytes = Buffer.byteLength(f.text);
    if (bytes > MAX_POLICY_FILE_BYTES) {
      problems.push(`${f.source}:1: ${bytes} bytes is over the ${MAX_POLICY_FILE_BYTES}-byte limit for a policy file: split it`);
      continue;
    }
    const aliases = aliasScanProblem(f.text);
    if (aliases) problems.push(`${f.source}:${lineOfOffset(f.text, aliases.offset)}: ${aliases.message}`);
  }
  return problems;
}
