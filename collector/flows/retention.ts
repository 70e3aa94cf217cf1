/**
 * Flow retention: by age (`--flow-retention`, default 7 days) and by size (`--flow-max-rows`,
 * default 10 million; optionally `--flow-max-bytes`). Enforced every 30 s and soon after big
 * ingests, by deleting the oldest rows in chunks — one short transaction per chunk, yielding
 * to the event loop between chunks so agents and API requests keep being served.
 */
import { statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Logger } from '../../common/log';

export const DEFAULT_FLOW_RETENTION_MS = 7 * 86_400_000;
export const DEFAULT_FLOW_MAX_ROWS = 10_000_000;
const DEFAULT_INTERVAL_MS = 30_000;
/** Rows deleted per transaction. */
const CHUNK_ROWS = 5_000;
/** Rows ingested since the last pass that make the next pass run now rather than in 30 s. */
const BIG_INGEST_ROWS = 100_000;

export interface RetentionOptions {
  /** Delete flows older than this (ms). */
  retentionMs?: number;
  /** Keep at most this many flow rows. */
  maxRows?: number;
  /** Keep the database's used pages under this many bytes (optional). */
  maxBytes?: number;
  /** How often retention runs (default 30 s). */
  retentionIntervalMs?: number;
}

/** What retention counts (part of the flow store's metrics). */
export interface RetentionMetrics {
  deleted(count: number, reason: 'age' | 'size'): void;
}

interface RetentionDeps {
  log: Logger;
  now: () => number;
  metrics: RetentionMetrics | undefined;
  rows: () => number;
  onDeleted: (count: number) => void;
  isClosed: () => boolean;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class Retention {
  private readonly retentionMs: number;
  private readonly maxRows: number;
  private readonly maxBytes: number | undefined;
  private readonly deleteOlder: Database.Statement<[number, number]>;
  private readonly deleteOldest: Database.Statement<[number]>;
  private readonly subtractRows: Database.Statement<[number, string]>;
  private readonly dropEmptyNodes: Database.Statement;
  private readonly pruneSessions: Database.Statement<[number]>;
  private readonly chunkTx: (run: () => Array<{ node: string }>) => number;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private queued: Promise<number> | undefined;
  private soon: NodeJS.Immediate | undefined;
  private sinceLastPass = 0;

  constructor(
    private readonly db: Database.Database,
    opts: RetentionOptions,
    private readonly deps: RetentionDeps,
  ) {
    this.retentionMs = opts.retentionMs ?? DEFAULT_FLOW_RETENTION_MS;
    this.maxRows = opts.maxRows ?? DEFAULT_FLOW_MAX_ROWS;
    this.maxBytes = opts.maxBytes;
    this.intervalMs = opts.retentionIntervalMs ?? DEFAULT_INTERVAL_MS;
    this.deleteOlder = db.prepare('DELETE FROM flows WHERE id IN (SELECT id FROM flows WHERE time_ms < ? ORDER BY time_ms, id LIMIT ?) RETURNING node');
    this.deleteOldest = db.prepare('DELETE FROM flows WHERE id IN (SELECT id FROM flows ORDER BY time_ms, id LIMIT ?) RETURNING node');
    this.subtractRows = db.prepare('UPDATE node_rows SET stored = stored - ? WHERE node = ?');
    this.dropEmptyNodes = db.prepare('DELETE FROM node_rows WHERE stored <= 0');
    // Sessions that never lost anything are only kept for duplicate detection.
    this.pruneSessions = db.prepare('DELETE FROM lost WHERE lost = 0 AND updated_ms < ?');
    this.chunkTx = db.transaction((run: () => Array<{ node: string }>): number => {
      const gone = run();
      if (gone.length === 0) return 0;
      const perNode = new Map<string, number>();
      for (const { node } of gone) perNode.set(node, (perNode.get(node) ?? 0) + 1);
      for (const [node, n] of perNode) this.subtractRows.run(n, node);
      this.dropEmptyNodes.run();
      this.deps.onDeleted(gone.length);
      return gone.length;
    });
  }

  describe(): { retentionMs: number; maxRows: number; maxBytes?: number } {
    return { retentionMs: this.retentionMs, maxRows: this.maxRows, ...(this.maxBytes !== undefined ? { maxBytes: this.maxBytes } : {}) };
  }

  start(): void {
    this.timer = setInterval(() => this.runInBackground(), this.intervalMs);
    this.timer.unref();
    this.runInBackground();
  }

  /** After an ingest: run soon when much arrived or a size limit is passed. */
  noteIngested(count: number): void {
    this.sinceLastPass += count;
    this.checkSoon();
  }

  /** A pass that starts after any running one: resolves to the rows it deleted. */
  enforce(): Promise<number> {
    if (!this.running) return this.start1();
    this.queued ??= this.running
      .catch(() => 0)
      .then(() => {
        this.queued = undefined;
        return this.running ?? this.start1();
      });
    return this.queued;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearImmediate(this.soon);
    this.timer = undefined;
    this.soon = undefined;
    await this.running?.catch(() => undefined);
    await this.queued?.catch(() => undefined);
  }

  usedBytes(): number {
    return usedBytes(this.db);
  }

  private start1(): Promise<number> {
    const run = this.pass().finally(() => {
      this.running = undefined;
      // flows that arrived while this pass ran may call for another
      if (this.sinceLastPass > 0) this.checkSoon();
    });
    this.running = run;
    return run;
  }

  private checkSoon(): void {
    if (this.soon || this.running || this.timer === undefined) return;
    if (this.sinceLastPass >= BIG_INGEST_ROWS || this.deps.rows() > this.maxRows) {
      this.soon = setImmediate(() => {
        this.soon = undefined;
        this.runInBackground();
      });
    }
  }

  /** Background passes (timer, after ingests) never queue behind a running one. */
  private runInBackground(): void {
    if (this.running) return;
    this.start1().catch((err: unknown) => this.deps.log.error({ err }, 'flow retention failed'));
  }

  private async pass(): Promise<number> {
    this.sinceLastPass = 0;
    let deleted = 0;
    const cutoff = this.deps.now() - this.retentionMs;
    // by age
    let byAge = 0;
    for (;;) {
      if (this.deps.isClosed()) return deleted;
      const n = this.deleteChunk(() => this.deleteOlder.all(cutoff, CHUNK_ROWS) as Array<{ node: string }>);
      byAge += n;
      if (n < CHUNK_ROWS) break;
      await yieldToLoop();
    }
    if (byAge > 0) this.deps.metrics?.deleted(byAge, 'age');
    if (!this.deps.isClosed()) this.pruneSessions.run(cutoff);
    // by rows, then by bytes
    // measured once per pass: freed pages lag behind deleted rows, so re-measuring bytes after
    // each chunk could delete far more than needed
    let bySize = 0;
    let excess = this.deps.isClosed() ? 0 : this.excessRows();
    while (excess > 0 && !this.deps.isClosed()) {
      const want = Math.min(CHUNK_ROWS, excess);
      const n = this.deleteChunk(() => this.deleteOldest.all(want) as Array<{ node: string }>);
      bySize += n;
      excess -= want;
      if (n === 0) break;
      await yieldToLoop();
    }
    if (bySize > 0) this.deps.metrics?.deleted(bySize, 'size');
    deleted = byAge + bySize;
    if (deleted > 0) {
      this.deps.log.info({ deletedByAge: byAge, deletedBySize: bySize, rows: this.deps.rows() }, 'flow retention deleted flows');
    }
    return deleted;
  }

  /** Rows to delete now to get under maxRows and (estimated from the mean row size) maxBytes. */
  private excessRows(): number {
    const rows = this.deps.rows();
    let excess = rows - this.maxRows;
    if (this.maxBytes !== undefined && rows > 0) {
      const used = this.usedBytes();
      if (used > this.maxBytes) excess = Math.max(excess, Math.ceil((used - this.maxBytes) / (used / rows)));
    }
    return Math.max(0, excess);
  }

  /** One transaction: delete a chunk of rows and keep node_rows in step. */
  private deleteChunk(run: () => Array<{ node: string }>): number {
    return this.chunkTx(run);
  }
}

/** Bytes of the database's pages in use (free pages not counted). */
export function usedBytes(db: Database.Database): number {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = db.pragma('page_count', { simple: true }) as number;
  const free = db.pragma('freelist_count', { simple: true }) as number;
  return (pages - free) * pageSize;
}

/** Size of the database file and its WAL on disk. */
export function fileBytes(file: string): number {
  const size = (f: string): number => {
    try {
      return statSync(f).size;
    } catch {
      return 0;
    }
  };
  return size(file) + size(`${file}-wal`);
}
