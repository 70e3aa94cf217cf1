/**
 * The collector's flow store: one SQLite file (`<data dir>/flows.db`, WAL, synchronous=NORMAL)
 * written through better-sqlite3. Agents' batches arrive through `ingest` (the FlowIngest of
 * collector/agent-session.ts): one transaction per batch with prepared statements; a batch is
 * stored at most once per (node, agent session, seq), and an agent may only write its own node's
 * flows. Queries and stats read the same database; `onStored` feeds the follow stream.
 * Retention (collector/flows/retention.ts) deletes the oldest rows by age and by size.
 */
import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';
import { DEFAULT_FLOWS_LIMIT, MAX_FLOWS_LIMIT, type FlowFilters, type StatsResponse, type StoredFlow } from '../../common/flows-api';
import { describeCause, errorCode, PalisadeError } from '../../common/errors';
import type { FlowRecord } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { FlowIngest } from '../agent-session';
import { whereClause } from './query';
import { DEFAULT_FLOW_RETENTION_MS, Retention, type RetentionMetrics, type RetentionOptions } from './retention';
import { EdgeRollup, LIVE_MINUTES, MAX_ROLLUP_RETENTION_MS, MINUTE_MS } from './rollup';
import { edgeFlowsSql, edgeTotalsSql, type EdgeFlowsQuery, type EdgeTotalsQuery, type EdgeTotalsRow, type RawEdgeTotals } from './rollup-query';
import { flowRow, INSERT_FLOW, ROUTE_COLUMN, SCHEMA, SCHEMA_VERSION, storedFlowJson, withOrigin } from './schema';

export const FLOWS_DB_FILE = 'flows.db';

/** What the store counts; the collector's metrics implement it (collector/api/metrics.ts). */
export interface FlowStoreMetrics extends RetentionMetrics {
  ingested(count: number): void;
  refused(count: number, reason: 'wrong-node'): void;
  duplicate(): void;
}

export interface FlowStoreOptions extends RetentionOptions {
  /** Path of the database file (created when missing). */
  file: string;
  log: Logger;
  metrics?: FlowStoreMetrics;
  /** Clock for `updated` stamps and age retention (tests). */
  now?: () => number;
}

/** A flow just stored: the record, its id and its wire form (`{"id":…}` JSON). */
export interface StoredEntry {
  id: number;
  record: FlowRecord;
  json: string;
}

/** `frame`: the agent's frame these flows were parsed from, when ingest was given it. */
export type StoredListener = (entries: readonly StoredEntry[], frame?: Uint8Array) => void;

type Batch = Parameters<FlowIngest['ingest']>[1];

interface SessionRow {
  last_seq: number;
  lost: number;
}

export class FlowStore implements FlowIngest {
  private readonly db: Database.Database;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly listeners = new Set<StoredListener>();
  private readonly statements = new Map<string, Database.Statement>();
  private readonly insertBatch: (node: string, batch: Batch, rows: unknown[][], times: number[]) => number[] | undefined;
  private readonly retention: Retention;
  private readonly rollup: EdgeRollup;
  private readonly rollupRetentionMs: number;
  private rollupPrunedAt = 0;
  private rollupFloor = 0;
  private lateWrites = 0;
  private rowCount: number;
  private closed = false;

  private constructor(private readonly opts: FlowStoreOptions) {
    this.log = opts.log.child({ component: 'flow-store' });
    this.now = opts.now ?? Date.now;
    const opened = openDatabase(opts.file);
    this.db = opened.db;
    this.rollup = new EdgeRollup(this.db);
    this.rollupRetentionMs = Math.min(opts.retentionMs ?? DEFAULT_FLOW_RETENTION_MS, MAX_ROLLUP_RETENTION_MS);
    if (opened.from === 1) this.backfillRollup();
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    const insert = this.db.prepare(INSERT_FLOW);
    const getSession = this.db.prepare<[string, string], SessionRow>('SELECT last_seq, lost FROM lost WHERE node = ? AND session = ?');
    const putSession = this.db.prepare(
      `INSERT INTO lost (node, session, last_seq, lost, updated_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (node, session) DO UPDATE SET last_seq = excluded.last_seq, lost = max(lost, excluded.lost), updated_ms = excluded.updated_ms`,
    );
    const addRows = this.db.prepare(
      'INSERT INTO node_rows (node, stored) VALUES (?, ?) ON CONFLICT (node) DO UPDATE SET stored = stored + excluded.stored',
    );
    this.insertBatch = this.db.transaction((node: string, batch: Batch, rows: unknown[][], times: number[]): number[] | undefined => {
      const prev = getSession.get(node, batch.session);
      if (prev && batch.seq <= prev.last_seq) return undefined;
      const ids = new Array<number>(rows.length);
      for (let i = 0; i < rows.length; i++) ids[i] = Number(insert.run(rows[i]).lastInsertRowid);
      this.rollup.add(batch.flows, times);
      putSession.run(node, batch.session, batch.seq, batch.lost, this.now());
      if (rows.length > 0) addRows.run(node, rows.length);
      return ids;
    });
    this.rowCount = (this.db.prepare('SELECT coalesce(sum(stored), 0) AS n FROM node_rows').get() as { n: number }).n;
    this.retention = new Retention(this.db, opts, {
      log: this.log,
      now: this.now,
      metrics: opts.metrics,
      rows: () => this.rowCount,
      onDeleted: (n) => (this.rowCount -= n),
      isClosed: () => this.closed,
    });
  }

  /** Open (or create) the store; PALISADE_ERR_DATA_DIR / NATIVE_LOAD with one line on failure. */
  static open(opts: FlowStoreOptions): FlowStore {
    const store = new FlowStore(opts);
    store.retention.start();
    store.log.info({ file: opts.file, rows: store.rowCount, ...store.retention.describe() }, 'flow store opened');
    return store;
  }

  /**
   * Store one batch of `node`'s flows in one transaction. A batch already stored (same agent
   * session, seq not above the last stored) changes nothing; a record naming another node
   * refuses the whole batch with PALISADE_ERR_PROTOCOL. `lost` is the agent's running total.
   */
  ingest(node: string, batch: Batch, frame?: Uint8Array): void {
    this.ensureOpen();
    const flows = batch.flows;
    for (let i = 0; i < flows.length; i++) {
      if (flows[i].node !== node) {
        this.opts.metrics?.refused(flows.length, 'wrong-node');
        throw new PalisadeError(
          'PALISADE_ERR_PROTOCOL',
          `flows[${i}] names node ${JSON.stringify(String(flows[i].node).slice(0, 64))}, but this session is node ${node}`,
        );
      }
    }
    // The session id is the agent's (checked: [A-Za-z0-9._-]), so it needs no JSON escaping.
    const jsons = flows.map((f, i) => withOrigin(JSON.stringify(f), batch.session, batch.seq, i));
    const rows = flows.map((f, i) => flowRow(f, jsons[i]));
    const ids = this.insertBatch(
      node,
      batch,
      rows,
      rows.map((r) => r[0] as number),
    );
    if (ids === undefined) {
      this.opts.metrics?.duplicate();
      this.log.debug({ node, session: batch.session, seq: batch.seq }, 'duplicate flow batch acknowledged');
      return;
    }
    this.rowCount += ids.length;
    let oldest = Infinity;
    for (const r of rows) oldest = Math.min(oldest, r[0] as number);
    if (Math.floor(oldest / MINUTE_MS) <= Math.floor(this.now() / MINUTE_MS) - LIVE_MINUTES) this.lateWrites++;
    this.opts.metrics?.ingested(ids.length);
    this.pruneRollup();
    this.retention.noteIngested(ids.length);
    if (this.listeners.size > 0 && ids.length > 0) {
      const entries = flows.map((record, i) => ({ id: ids[i], record, json: storedFlowJson(ids[i], jsons[i]) }));
      for (const listener of this.listeners) {
        try {
          listener(entries, frame);
        } catch (err) {
          this.log.error({ err }, 'flow listener failed');
        }
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
    return this.rowCount;
  }

  /** Bytes of the database file in use (free pages not counted; the file does not shrink). */
  bytes(): number {
    this.ensureOpen();
    return this.retention.usedBytes();
  }

  /** Size of the database file and its WAL on disk. */
  fileBytes(): number {
    return this.retention.fileBytes(this.opts.file);
  }

  /** Run retention now (it also runs every 30 s and after big ingests); resolves to rows deleted. */
  enforceRetention(): Promise<number> {
    this.ensureOpen();
    return this.retention.enforce();
  }

  /** Stop retention, wait for a running pass, close the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await this.retention.stop();
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

  /** Minutes of rollup older than the rollup retention go, at most once a minute (each ingest asks). */
  private pruneRollup(): void {
    const now = this.now();
    if (now - this.rollupPrunedAt < MINUTE_MS) return;
    this.rollupPrunedAt = now;
    const n = this.rollup.pruneBefore(now - this.rollupRetentionMs);
    this.rollupFloor = Math.floor((now - this.rollupRetentionMs) / MINUTE_MS);
    if (n > 0) this.log.debug({ rows: n }, 'edge rollup pruned');
  }

  /** A database of schema 1 had no rollup: rebuild it from the flows still inside its retention. */
  private backfillRollup(): void {
    const since = this.now() - this.rollupRetentionMs;
    const rows = this.db.prepare('SELECT time_ms, json FROM flows WHERE time_ms >= ? ORDER BY time_ms').iterate(since) as IterableIterator<{ time_ms: number; json: string }>;
    let n = 0;
    const chunk: { flows: FlowRecord[]; times: number[] } = { flows: [], times: [] };
    const flush = this.db.transaction(() => {
      this.rollup.add(chunk.flows, chunk.times);
    });
    for (const r of rows) {
      chunk.flows.push(JSON.parse(r.json) as FlowRecord);
      chunk.times.push(r.time_ms);
      if (chunk.flows.length === 5000) {
        flush();
        n += chunk.flows.length;
        chunk.flows = [];
        chunk.times = [];
      }
    }
    flush();
    n += chunk.flows.length;
    this.log.info({ flows: n }, 'edge rollup rebuilt from stored flows');
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

/** The database with our pragmas and schema, and the schema version it had (0: new); one-line errors that name the file. */
function openDatabase(file: string): { db: Database.Database; from: number } {
  let db: Database.Database;
  let from: number;
  try {
    db = new Database(file);
  } catch (err) {
    if (errorCode(err) === 'ERR_DLOPEN_FAILED' || /better_sqlite3\.node|bindings file/.test((err as Error).message ?? '')) {
      throw new PalisadeError('PALISADE_ERR_NATIVE_LOAD', `cannot load better-sqlite3's native module (reinstall with npm ci): ${describeCause(err)}`, { cause: err });
    }
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot open ${file}: ${describeCause(err)}`, { cause: err });
  }
  try {
    // flows say who talks to whom: owner only, like the CA key (the WAL and SHM files inherit it)
    chmodSync(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 2000');
    db.pragma('journal_size_limit = 67108864');
    from = db.pragma('user_version', { simple: true }) as number;
    // 1 → 2 only adds the edge rollup (rebuilt from the stored flows by the store); 2 → 3 the route column
    if (from !== 0 && from !== 1 && from !== 2 && from !== SCHEMA_VERSION) {
      throw new Error(`schema version ${from}, this collector knows ${SCHEMA_VERSION}`);
    }
    db.exec(SCHEMA);
    const columns = db.prepare('SELECT name FROM pragma_table_info(\'flows\')').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'route')) db.transaction(() => db.exec(ROUTE_COLUMN.add))();
    db.exec(ROUTE_COLUMN.index);
  } catch (err) {
    db.close();
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot use ${file}: ${describeCause(err)}`, { cause: err });
  }
  return { db, from };
}
