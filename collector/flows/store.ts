/**
 * The collector's flow store: one SQLite file (`<data dir>/flows.db`, WAL, synchronous=NORMAL)
 * written through better-sqlite3. Agents' batches arrive through `ingest` (the FlowIngest of
 * collector/agent-session.ts): one transaction per batch with prepared statements; a batch is
 * stored at most once per (node, agent session, seq), and an agent may only write its own node's
 * flows. Queries and stats read the same database; `onStored` feeds the follow stream.
 * Retention (collector/flows/retention.ts) deletes the oldest rows by age and by size.
 *
 * Opened with `openWithWriterThread` (the collector), every write — batches, rollup, retention —
 * runs in a writer thread (collector/flows/writer-thread.ts) and `ingest` resolves once the
 * batch is committed; this thread's connection then only reads (WAL: it sees every commit).
 * Opened with `open`, writes run here and `ingest` returns when stored.
 */
import Database from 'better-sqlite3';
import { DEFAULT_FLOWS_LIMIT, MAX_FLOWS_LIMIT, type FlowFilters, type StatsResponse, type StoredFlow } from '../../common/flows-api';
import { PalisadeError } from '../../common/errors';
import type { FlowRecord } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { FlowIngest } from '../agent-session';
import { FlowsFrameRefusal, wrongNode, type FlowsEnvelope } from './flows-frame';
import { whereClause } from './query';
import { DEFAULT_FLOW_RETENTION_MS, fileBytes, usedBytes, type RetentionMetrics, type RetentionOptions } from './retention';
import { MAX_ROLLUP_RETENTION_MS } from './rollup';
import { edgeFlowsSql, edgeTotalsSql, type EdgeFlowsQuery, type EdgeTotalsQuery, type EdgeTotalsRow, type RawEdgeTotals } from './rollup-query';
import { SCHEMA_VERSION, storedFlowJson, storedJsons } from './schema';
import { SessionGaps } from './session-gaps';
import { batchOf, frameBatch, type StoredBatch, type StoredListener } from './stored-batch';
import { backfillRollup, countRows, FlowWriter, openDatabase, type BatchMeta, type Committed } from './writer';
import { WriterThread, type FrameCommitted } from './writer-thread';

export const FLOWS_DB_FILE = 'flows.db';

/** What the store counts; the collector's metrics implement it (collector/api/metrics.ts). */
export interface FlowStoreMetrics extends RetentionMetrics {
  ingested(count: number): void;
  /** wrong-node: a record of another node; busy: the writer thread's queue was full, or it failed (the agent sends it again). */
  refused(count: number, reason: 'wrong-node' | 'busy'): void;
  duplicate(): void;
}

export interface FlowStoreOptions extends RetentionOptions {
  /** Path of the database file (created when missing). */
  file: string;
  log: Logger;
  metrics?: FlowStoreMetrics;
  /** Clock for `updated` stamps and age retention (tests). */
  now?: () => number;
  /** With the writer thread: flows waiting for it before batches are refused (writer-thread.ts). */
  writerQueueFlows?: number;
}

export type { StoredBatch, StoredEntry, StoredListener } from './stored-batch';

type Batch = Parameters<FlowIngest['ingest']>[1];

export class FlowStore implements FlowIngest {
  private readonly db: Database.Database;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly listeners = new Set<StoredListener>();
  private readonly statements = new Map<string, Database.Statement>();
  /** Writes in this thread (`open`), or … */
  private readonly writer: FlowWriter | undefined;
  /** … in the writer thread (`openWithWriterThread`). */
  private thread: WriterThread | undefined;
  private readonly gaps = new SessionGaps();
  private rollupFloor = 0;
  private lateWrites = 0;
  private rowCount: number;
  private closed = false;

  private constructor(
    private readonly opts: FlowStoreOptions,
    threaded: boolean,
  ) {
    this.log = opts.log.child({ component: 'flow-store' });
    this.now = opts.now ?? Date.now;
    const opened = openDatabase(opts.file);
    this.db = opened.db;
    if (opened.from === 1) backfillRollup(this.db, this.now() - Math.min(opts.retentionMs ?? DEFAULT_FLOW_RETENTION_MS, MAX_ROLLUP_RETENTION_MS), this.log);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    this.rowCount = countRows(this.db);
    if (!threaded) this.writer = new FlowWriter(this.db, { ...opts, log: this.log, now: this.now, metrics: opts.metrics });
  }

  /** Open (or create) the store, writing in this thread; PALISADE_ERR_DATA_DIR / NATIVE_LOAD with one line on failure. */
  static open(opts: FlowStoreOptions): FlowStore {
    const store = new FlowStore(opts, false);
    store.writer!.retention.start();
    store.log.info({ file: opts.file, rows: store.rows(), ...store.writer!.retention.describe() }, 'flow store opened');
    return store;
  }

  /** Open (or create) the store with its writes in a writer thread (the collector's store). */
  static async openWithWriterThread(opts: FlowStoreOptions): Promise<FlowStore> {
    const store = new FlowStore(opts, true);
    try {
      store.thread = await WriterThread.start({
        file: opts.file,
        retention: { retentionMs: opts.retentionMs, maxRows: opts.maxRows, maxBytes: opts.maxBytes, retentionIntervalMs: opts.retentionIntervalMs },
        log: store.log,
        metrics: opts.metrics,
        onDeleted: (n) => (store.rowCount -= n),
        onReady: (n) => (store.rowCount = n),
        maxQueuedFlows: opts.writerQueueFlows,
      });
    } catch (err) {
      store.db.close();
      throw err;
    }
    store.log.info({ file: opts.file, rows: store.rowCount, writer: 'thread' }, 'flow store opened');
    return store;
  }

  /**
   * Store one batch of `node`'s flows in one transaction. A batch already stored (same agent
   * session, seq not above the last stored) changes nothing; a record naming another node
   * refuses the whole batch with PALISADE_ERR_PROTOCOL. `lost` is the agent's running total.
   */
  ingest(node: string, batch: Batch, frame?: Uint8Array): void | Promise<void> {
    this.ensureOpen();
    const flows = batch.flows;
    const problem = wrongNode(flows, node);
    if (problem) {
      this.opts.metrics?.refused(flows.length, 'wrong-node');
      throw new PalisadeError('PALISADE_ERR_PROTOCOL', problem);
    }
    const jsons = storedJsons(batch);
    const meta: BatchMeta = { node, session: batch.session, seq: batch.seq, lost: batch.lost };
    if (this.writer) {
      const c = this.writer.commit(meta, flows, jsons);
      return this.stored(meta, c, (ids) => batchOf(ids, flows, jsons, frame));
    }
    return this.toThread(meta, flows.length, () => this.thread!.commit(meta, jsons), (ids) => batchOf(ids, flows, jsons, frame));
  }

  /**
   * Store an agent's flows frame whose envelope the session read (flows-frame.ts): parsed,
   * checked and stored in the writer thread, so this thread never parses its records. Rejects
   * with PALISADE_ERR_PROTOCOL for a frame refused as a whole (nothing of it stored), as `ingest`
   * throws. `flows`: its records as counted (countRecords).
   */
  async ingestFrame(node: string, envelope: FlowsEnvelope, frame: Buffer, flows: number): Promise<void> {
    this.ensureOpen();
    const meta: BatchMeta = { node, ...envelope };
    try {
      const thread = this.thread;
      if (!thread) throw new PalisadeError('PALISADE_ERR_INTERNAL', 'an agent frame is stored by the writer thread: open the store with openWithWriterThread');
      await this.toThread(meta, flows, () => thread.commitFrame(meta, frame, flows), (ids, c) => frameBatch(ids, frame, c.denied ?? []));
    } catch (err) {
      if (err instanceof FlowsFrameRefusal && err.wrongNode) this.opts.metrics?.refused(flows, 'wrong-node');
      throw err;
    }
  }

  /** Flows waiting for the writer thread (0 without one). */
  writerQueued(): number {
    return this.thread?.queued ?? 0;
  }

  /** The writer thread (tests end it as a crash would: `crash()`). */
  get writerThread(): WriterThread | undefined {
    return this.thread;
  }

  /** A batch to the writer thread, in its session's order; refused (never acknowledged, so sent again) when it cannot be taken. */
  private async toThread(
    meta: BatchMeta,
    flows: number,
    send: () => Promise<FrameCommitted>,
    batch: (ids: number[], c: FrameCommitted) => StoredBatch,
  ): Promise<void> {
    const key = `${meta.node}\n${meta.session}`;
    const refuse = (err: unknown, taken: boolean): never => {
      if (taken) this.gaps.failed(key, meta.seq);
      else this.gaps.refused(key, meta.seq);
      if (!(err instanceof FlowsFrameRefusal)) this.opts.metrics?.refused(flows, 'busy');
      throw err;
    };
    if (!this.gaps.mayTake(key, meta.seq)) {
      this.opts.metrics?.refused(flows, 'busy');
      throw new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `batch ${meta.seq} waits for an earlier refused batch of its session`);
    }
    let committing: Promise<FrameCommitted>;
    try {
      committing = send();
    } catch (err) {
      return refuse(err, false);
    }
    this.gaps.taken(key, meta.seq);
    let c: FrameCommitted;
    try {
      c = await committing;
    } catch (err) {
      return refuse(err, true);
    }
    if (c.ids !== undefined) this.rowCount += c.ids.length;
    this.stored(meta, c, (ids) => batch(ids, c));
  }

  /** After a commit: count, and tell the listeners what `batch` makes of the ids stored (nothing for a duplicate). */
  private stored(meta: BatchMeta, c: Committed, batch: (ids: number[]) => StoredBatch): void {
    if (c.ids === undefined) {
      this.opts.metrics?.duplicate();
      this.log.debug({ node: meta.node, session: meta.session, seq: meta.seq }, 'duplicate flow batch acknowledged');
      return;
    }
    if (c.late) this.lateWrites++;
    this.rollupFloor = c.rollupFloor;
    this.opts.metrics?.ingested(c.ids.length);
    if (this.listeners.size === 0 || c.ids.length === 0) return;
    const stored = batch(c.ids);
    for (const listener of this.listeners) {
      try {
        listener(stored);
      } catch (err) {
        this.log.error({ err }, 'flow listener failed');
      }
    }
  }

  /** Call `listener` with every batch stored from now on; returns the unsubscribe function. */
  onStored(listener: StoredListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The newest matching flows as StoredFlow JSON texts (newest first; limit clamped to MAX_FLOWS_LIMIT). */
  queryJson(filters: FlowFilters): string[] {
    this.ensureOpen();
    const { where, params } = whereClause(filters);
    const limit = Math.min(filters.limit ?? DEFAULT_FLOWS_LIMIT, MAX_FLOWS_LIMIT);
    const stmt = this.statement(`SELECT id, json FROM flows ${where} ORDER BY time_ms DESC, id DESC LIMIT ?`);
    const rows = stmt.all(...params, limit) as Array<{ id: number; json: string }>;
    return rows.map((r) => storedFlowJson(r.id, r.json));
  }

  /**
   * Every flow matching `filters` (its `limit` ignored), oldest first, at most `max`: what replay
   * and learning read. Synchronous: nothing is stored while the caller iterates.
   */
  *scan(filters: FlowFilters, max: number): Generator<StoredFlow> {
    this.ensureOpen();
    yield* scanFlows(this.db, filters, max);
  }

  /** The database file (a reader in another thread opens it read-only: openFlowReader). */
  get file(): string {
    return this.opts.file;
  }

  /** `queryJson`, parsed. */
  query(filters: FlowFilters): StoredFlow[] {
    return this.queryJson(filters).map((j) => JSON.parse(j) as StoredFlow);
  }

  /** Rows stored, and flows lost by agents, in total and per node. */
  stats(): StatsResponse {
    this.ensureOpen();
    const out: StatsResponse = { stored: 0, lost: {}, nodes: {} };
    const node = (n: string): { stored: number; lost: number } => (out.nodes[n] ??= { stored: 0, lost: 0 });
    for (const r of this.statement('SELECT node, stored FROM node_rows').all() as Array<{ node: string; stored: number }>) {
      node(r.node).stored = r.stored;
      out.stored += r.stored;
    }
    for (const r of this.statement('SELECT node, sum(lost) AS lost FROM lost GROUP BY node').all() as Array<{ node: string; lost: number }>) {
      node(r.node).lost = r.lost;
      out.lost[r.node] = r.lost;
    }
    return out;
  }

  /** Flows `node`'s agents reported lost: the sum over their sessions. */
  lost(node: string): number {
    this.ensureOpen();
    return (this.statement('SELECT coalesce(sum(lost), 0) AS n FROM lost WHERE node = ?').get(node) as { n: number }).n;
  }

  /** Flow rows stored. */
  rows(): number {
    return this.writer?.rows() ?? this.rowCount;
  }

  /** Bytes of the database file in use (free pages not counted; the file does not shrink). */
  bytes(): number {
    this.ensureOpen();
    return usedBytes(this.db);
  }

  /** Size of the database file and its WAL on disk. */
  fileBytes(): number {
    return fileBytes(this.opts.file);
  }

  /** Run retention now (it also runs every 30 s and after big ingests); resolves to rows deleted. */
  enforceRetention(): Promise<number> {
    this.ensureOpen();
    return this.writer ? this.writer.retention.enforce() : this.thread!.enforce();
  }

  /** Stop retention, wait for a running pass, close the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await this.writer?.stop();
    await this.thread?.close();
    this.db.close();
    this.log.info('flow store closed');
  }

  /** Rollup totals per edge over a time range (collector/flows/rollup-query.ts): what the service map draws. */
  edgeTotals(q: EdgeTotalsQuery): EdgeTotalsRow[] {
    this.ensureOpen();
    const { sql, params } = edgeTotalsSql(q);
    return this.statement(sql).all(...params) as EdgeTotalsRow[];
  }

  /** The same totals as raw rows (rollup-query.ts RawEdgeTotals): what the dashboard reads. */
  edgeTotalsRaw(q: EdgeTotalsQuery): RawEdgeTotals[] {
    this.ensureOpen();
    const { sql, params } = edgeTotalsSql(q);
    return this.statement(`${sql} /* raw */`).raw(true).all(...params) as RawEdgeTotals[];
  }

  /** How many stored batches added to a settled minute of the rollup (rollup.ts LIVE_MINUTES): the dashboard's kept sums are then made again. */
  lateRollupWrites(): number {
    return this.lateWrites;
  }

  /** The first minute the rollup still holds: older ones were pruned. */
  rollupFloorMinute(): number {
    return this.rollupFloor;
  }

  /** The flows of one map edge or node, newest first (collector/flows/rollup-query.ts). */
  edgeFlowsJson(q: EdgeFlowsQuery): string[] {
    this.ensureOpen();
    const { sql, params } = edgeFlowsSql(q);
    const rows = this.statement(sql).all(...params) as Array<{ id: number; json: string }>;
    return rows.map((r) => storedFlowJson(r.id, r.json));
  }

  private statement(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private ensureOpen(): void {
    if (this.closed) throw new PalisadeError('PALISADE_ERR_INTERNAL', 'the flow store is closed');
  }
}

/** The flows matching `filters`, oldest first, at most `max`, read as they are needed. */
export function* scanFlows(db: Database.Database, filters: FlowFilters, max: number): Generator<StoredFlow> {
  const { where, params } = whereClause(filters);
  const stmt = db.prepare(`SELECT id, json FROM flows ${where} ORDER BY time_ms ASC, id ASC LIMIT ?`);
  for (const row of stmt.iterate(...params, max) as IterableIterator<{ id: number; json: string }>) {
    yield { ...(JSON.parse(row.json) as FlowRecord), id: row.id };
  }
}

/** `file` opened read-only, for a reader in another thread (WAL: it sees every committed batch). */
export function openFlowReader(file: string): Database.Database {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 2000');
  return db;
}
